"""t2i_audit.audits"""
