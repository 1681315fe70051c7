/*
 * lazymem/lazymem.h - everything a user of liblazymem includes.
 */
#ifndef LAZYMEM_LAZYMEM_H
#define LAZYMEM_LAZYMEM_H

#include <lazymem/error.h>
#include <lazymem/source.h>
#include <lazymem/region.h>
#include <lazymem/fault.h>
#include <lazymem/stats.h>
#include <lazymem/foreign.h>
#include <lazymem/snapshot.h>
#include <lazymem/wp.h>
#include <lazymem/reclaim.h>

#endif
