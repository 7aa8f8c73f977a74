"""From the outside world to the tracker: the watcher, inotify, the ingest and the stall timer."""
