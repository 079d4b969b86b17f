#include "ccl_nccl.h"

#include <limits.h>

ccl_nccl_config ccl_nccl_config_default(void) {
    ccl_nccl_config config = {sizeof(ccl_nccl_config), 0xcafebeef, 21700, INT_MIN, INT_MIN, INT_MIN, INT_MIN, 0, INT_MIN};
    return config;
}

typedef int (*comm_init_rank_config_fn)(void **, int, ccl_nccl_unique_id, int, ccl_nccl_config *);

int ccl_nccl_comm_init_rank_config(void *function, void **comm, int nranks, const ccl_nccl_unique_id *id, int rank,
                                   ccl_nccl_config *config) {
    return ((comm_init_rank_config_fn)function)(comm, nranks, *id, rank, config);
}
