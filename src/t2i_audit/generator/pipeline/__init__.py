"""Pipeline: the unCLIP pipeline (text -> prior -> decoder -> pixels, optional reranking) and its
optional safety filter.
"""
