"""t2i_audit.world"""
