"""Metrics: CLIPScore (`clip`), distribution distances (`distribution`), PictoWorld skills (`skills`),
and the registry of metric names the scorer runs (`registry`)."""
