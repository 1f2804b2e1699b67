/* voxflow node plugin ABI, version 1. Mirrors plugins/abi/src/lib.rs; see docs/PLUGINS.md.
 *
 * A plugin is a shared library exporting `voxflow_plugin_entry`. The host reads `abi_version`
 * first and refuses any other version, so every layout or meaning change below bumps it.
 *
 * Ownership:
 * - Everything the plugin returns from `voxflow_plugin_entry` (the table, kinds, strings) must
 *   stay valid and unchanged for the life of the process: the host never unloads a plugin.
 * - Inputs, params and the host table are lent for the duration of one `run` call, read-only.
 * - Output buffers are allocated by the host through `alloc_output` (zero-filled, C order) and
 *   stay owned by the host; the plugin writes them during the call and must not free or keep
 *   them.
 * - `set_error` copies the message; the plugin keeps ownership of its string.
 * - `run` may be called from several threads at once (one per graph node): keep no unguarded
 *   global state.
 */
#ifndef VOXFLOW_PLUGIN_H
#define VOXFLOW_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VOXFLOW_PLUGIN_ABI_VERSION 1u
#define VOXFLOW_PLUGIN_ENTRY "voxflow_plugin_entry"

/* Stream types (vf_volume.stream_type). */
#define VF_STREAM_IMAGE 0u /* scalar float32 volume */
#define VF_STREAM_LABEL 1u /* uint8 label volume */
#define VF_STREAM_PROB 2u  /* C-channel float32 probabilities */

/* Element types (vf_volume.dtype): image and prob are F32, label is U8. */
#define VF_DTYPE_F32 0u
#define VF_DTYPE_U8 1u

/* Return values of run. */
#define VF_OK 0
#define VF_ERROR 1 /* message given through set_error */
#define VF_PANIC 2 /* used by the Rust helper when it caught a panic */

/* Param kinds (vf_param.kind). */
#define VF_PARAM_UNSET 0u
#define VF_PARAM_BOOL 1u   /* int_value 0 or 1 */
#define VF_PARAM_INT 2u    /* int_value, float_value */
#define VF_PARAM_FLOAT 3u  /* float_value */
#define VF_PARAM_STRING 4u /* text (also path and enum params) */
#define VF_PARAM_LIST 5u   /* text holds the list as JSON */

/* A whole volume as a plain buffer. */
typedef struct vf_volume {
    uint32_t stream_type;
    uint32_t dtype;
    /* nk, channels, nj, ni; channels is 1 for image and label. Axis k = slice, j = row,
     * i = column; NIfTI voxel (i, j, k) of channel c is data[((k * C + c) * nj + j) * ni + i]. */
    uint64_t shape[4];
    /* Voxel size in mm, in array order: dk, dj, di. */
    double spacing[3];
    /* Row-major 4x4 matrix mapping voxel (i, j, k, 1) to world mm (NIfTI RAS+). */
    double affine[16];
    /* C-order elements (float or uint8_t per dtype); NULL for an unconnected optional input. */
    void *data;
    /* Number of elements: the product of shape. */
    uint64_t len;
} vf_volume;

/* One param value, checked against the declaration, defaults filled in. */
typedef struct vf_param {
    const char *name;
    uint32_t kind;
    int64_t int_value;
    double float_value;
    /* The string value for VF_PARAM_STRING, else the value as JSON ("null" when unset). Never NULL. */
    const char *text;
} vf_param;

/* Services the host offers during one run call. */
typedef struct vf_host {
    void *ctx;
    /* Threads the node may use for its own parallel work. */
    uint32_t threads;
    /* Allocates output `port` (declaration order) with the geometry in `desc` (data and len are
     * ignored). Returns a zero-filled buffer of product(shape) elements of desc->dtype, owned
     * by the host, or NULL (with the reason recorded) when the request is invalid. */
    void *(*alloc_output)(void *ctx, uint32_t port, const vf_volume *desc);
    /* Records an error message (UTF-8, copied). */
    void (*set_error)(void *ctx, const char *message);
} vf_host;

/* Runs one node on whole volumes. `inputs` has one entry per declared input port, in
 * declaration order; `params` one entry per declared param, in declaration order. Must
 * allocate every declared output before returning VF_OK. */
typedef int32_t (*vf_run_fn)(const void *user_data, const vf_host *host, const vf_param *params,
                             uint32_t n_params, const vf_volume *inputs, uint32_t n_inputs);

typedef struct vf_kind {
    /* The declaration as JSON (UTF-8): kind, about, docs, inputs, outputs, params. */
    const char *decl_json;
    vf_run_fn run;
    /* Passed back to run unchanged. */
    const void *user_data;
} vf_kind;

typedef struct vf_plugin {
    /* Must be VOXFLOW_PLUGIN_ABI_VERSION; read before anything else. */
    uint32_t abi_version;
    uint32_t n_kinds;
    const vf_kind *kinds;
    /* Plugin name for messages (may be NULL). */
    const char *name;
} vf_plugin;

/* The one symbol a plugin exports. */
const vf_plugin *voxflow_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif
