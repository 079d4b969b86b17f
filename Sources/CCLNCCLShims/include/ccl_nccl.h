#ifndef CCL_NCCL_H
#define CCL_NCCL_H

// The few NCCL and CUDA driver declarations swift-ccl needs, written here so that nothing from
// NVIDIA is needed to build: both libraries are opened at run time (dlopen), and their functions
// are called through pointers resolved with dlsym. Layouts follow nccl.h and cuda.h.

#include <stddef.h>
#include <stdint.h>

/// `ncclUniqueId`: 128 opaque bytes made by rank 0 and sent to every rank.
typedef struct {
    char internal[128];
} ccl_nccl_unique_id;

/// `ncclConfig_t` as NCCL 2.17 declared it (`version` 21700). Newer libraries read a config by its
/// `size` and `version` and give the fields it lacks their defaults, so this layout stays valid.
typedef struct {
    size_t size;
    unsigned int magic;    // 0xcafebeef
    unsigned int version;  // NCCL_VERSION(2, 17, 0) = 21700
    int blocking;
    int cgaClusterSize;
    int minCTAs;
    int maxCTAs;
    const char *netName;
    int splitShare;
} ccl_nccl_config;

/// NCCL_CONFIG_INITIALIZER for the layout above: every tunable left to NCCL (INT_MIN, NULL).
ccl_nccl_config ccl_nccl_config_default(void);

/// Calls `ncclCommInitRankConfig` (resolved at run time, passed as `function`) with the unique id
/// by value: Swift cannot pass a 128-byte struct by value through a C function pointer.
int ccl_nccl_comm_init_rank_config(void *function, void **comm, int nranks, const ccl_nccl_unique_id *id, int rank,
                                   ccl_nccl_config *config);

#endif
