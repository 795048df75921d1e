"""OCI images: a reproducible layer tar writer, image layouts read and written, app slices."""
