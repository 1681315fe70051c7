/*
 * fs.h - file-system helpers shared above the core: removing a scratch
 * directory tree (benchmarks, the demo, the local test store) without
 * handing a path to a shell.
 */
#ifndef LAZYMEM_UTIL_FS_H
#define LAZYMEM_UTIL_FS_H

/* Remove path and everything under it, not following symlinks. 0, or
 * -errno of the first entry that could not be removed (the walk stops
 * there). A path that does not exist is not an error. */
int util_remove_tree(const char *path);

#endif
