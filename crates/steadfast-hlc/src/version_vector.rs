//! Version vectors (work in progress).
