"""The bottom layer every package may import: atomic file writes and hashing (`io`), the config base
(`config`), thread settings (`threads`). Imports nothing else from t2i_audit but `errors`."""
