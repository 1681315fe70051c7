/*
 * fs.c - util_remove_tree: a depth-first nftw walk that removes each entry
 * after its children and stops at the first that cannot be removed.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

#include "util/fs.h"

static int remove_entry(const char *path, const struct stat *st, int type,
			struct FTW *ftw)
{
	(void)st; (void)type; (void)ftw;
	return remove(path) ? -1 : 0;	/* errno is remove's */
}

int util_remove_tree(const char *path)
{
	if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS))
		return errno == ENOENT ? 0 : -errno;
	return 0;
}
