"""t2i_audit.generator"""
