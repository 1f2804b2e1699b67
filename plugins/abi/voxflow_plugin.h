/* voxflow node plugin ABI, version 2. Mirrors plugins/abi/src/lib.rs; see docs/PLUGINS.md.
 *
 * A plugin is a shared library exporting `voxflow_plugin_entry`. The host reads `abi_version`
 * first and accepts version 2 (this file) and version 1 (the same without streaming: `vf_kind`
 * had only decl_json, run and user_data); every layout or meaning change bumps it.
 *
 * A kind either streams (start / slice / finish: slice k of every input in, slices out as soon
 * as the plugin has them) or works on whole volumes (run: the host gathers the inputs first).
 *
 * Ownership:
 * - Everything the plugin returns from `voxflow_plugin_entry` (the table, kinds, strings) must
 *   stay valid and unchanged for the life of the process: the host never unloads a plugin.
 * - Inputs, params and the host table are lent for the duration of one `run` call, read-only.
 * - Output buffers are allocated by the host through `alloc_output` (zero-filled, C order) and
 *   stay owned by the host; the plugin writes them during the call and must not free or keep
 *   them.
 * - `set_error` copies the message; the plugin keeps ownership of its string.
 * - Streaming: input slices are lent for one `slice` call; `emit_slice` copies the voxels, so
 *   the plugin keeps its buffer. The `state` that `start` returns belongs to the plugin; the
 *   host passes it back and calls `finish` exactly once for it.
 * - Functions may be called from several threads at once (one per graph node; one node's
 *   calls come from one thread, in order): keep no unguarded global state.
 */
#ifndef VOXFLOW_PLUGIN_H
#define VOXFLOW_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VOXFLOW_PLUGIN_ABI_VERSION 2u
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

/* `completed` of vf_finish_fn. */
#define VF_STOPPED 0   /* the run stopped early: free the state, emit nothing */
#define VF_COMPLETED 1 /* every slice was delivered: emit what is held back, then free */

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

/* Slice k of one input in a streaming call: voxels in C order (c, j, i), channels * nj * ni
 * elements of `dtype`; `data` is NULL (and len 0) when the input is not connected or has no
 * slice k (a sparse stream). */
typedef struct vf_slice {
    const void *data;
    uint64_t len;
    uint32_t dtype;
} vf_slice;

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
    /* Version 2, streaming kinds. In `start`: declares output `port` with the geometry of the
     * whole output volume in `desc` (data and len are ignored); every declared output must be
     * opened there. Returns VF_OK, or VF_ERROR with the reason recorded. */
    int32_t (*open_output)(void *ctx, uint32_t port, const vf_volume *desc);
    /* In `slice` and in `finish` (VF_COMPLETED): sends slice k of output `port`, `len`
     * elements of the output's dtype (channels * nj * ni), copied. Slices of one output go in
     * increasing k. By the end of `finish`, an output with as many slices as the inputs must
     * have sent exactly the slice indices delivered to `slice` (a sparse input gives a sparse
     * output); an output with another number of slices must have sent all of them. Returns
     * VF_OK, or VF_ERROR with the reason recorded. */
    int32_t (*emit_slice)(void *ctx, uint32_t port, uint64_t k, const void *data, uint64_t len);
} vf_host;

/* Runs one node on whole volumes. `inputs` has one entry per declared input port, in
 * declaration order; `params` one entry per declared param, in declaration order. Must
 * allocate every declared output before returning VF_OK. */
typedef int32_t (*vf_run_fn)(const void *user_data, const vf_host *host, const vf_param *params,
                             uint32_t n_params, const vf_volume *inputs, uint32_t n_inputs);

/* Streaming, once per node run: `inputs` has one entry per declared input port with the
 * geometry of the whole input (data NULL, len 0; all of shape 0 for an unconnected optional
 * input). Reads the params (lent for this call only), opens every output with
 * host->open_output, and sets *state to the plugin's own state for the calls that follow.
 * On VF_ERROR / VF_PANIC the plugin has freed that state itself: no `finish` follows. */
typedef int32_t (*vf_start_fn)(const void *user_data, const vf_host *host, const vf_param *params,
                               uint32_t n_params, const vf_volume *inputs, uint32_t n_inputs,
                               void **state);
/* Streaming, once per slice index k present in any input, in increasing k: slice k of every
 * declared input port. May emit slices. */
typedef int32_t (*vf_slice_fn)(void *state, const vf_host *host, uint64_t k,
                               const vf_slice *inputs, uint32_t n_inputs);
/* Streaming, exactly once after a successful `start`: with VF_COMPLETED after the last slice
 * (emit what is held back), or with VF_STOPPED when the run stops early (a failed call, another
 * node's error, an interrupt: emit nothing). Frees the state either way. */
typedef int32_t (*vf_finish_fn)(void *state, const vf_host *host, int32_t completed);

/* One node kind: either `run` (whole volumes) or all of start, slice and finish (streaming);
 * the other part is NULL. */
typedef struct vf_kind {
    /* The declaration as JSON (UTF-8): kind, about, docs, inputs, outputs, params. */
    const char *decl_json;
    vf_run_fn run;
    /* Passed back to run and start unchanged. */
    const void *user_data;
    vf_start_fn start;
    vf_slice_fn slice;
    vf_finish_fn finish;
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
