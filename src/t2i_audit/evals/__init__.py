"""t2i_audit.evals"""
