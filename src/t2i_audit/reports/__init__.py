"""t2i_audit.reports"""
