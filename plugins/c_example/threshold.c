/* Example voxflow plugin in C: `c_threshold` turns an image into a label (1 where value >= min),
 * slice by slice: each output slice goes on as soon as its input slice has arrived.
 * Build: cc -shared -fPIC -O2 -I plugins/abi -o libc_threshold.so plugins/c_example/threshold.c */
#include <stdlib.h>
#include <string.h>
#include "voxflow_plugin.h"

static const char DECL[] =
    "{\"kind\": \"c_threshold\","
    " \"about\": \"Label 1 where the image is >= min, else 0 (C example plugin, streams slices)\","
    " \"inputs\": [{\"name\": \"in\", \"type\": \"image\", \"about\": \"image\"}],"
    " \"outputs\": [{\"name\": \"out\", \"type\": \"label\", \"about\": \"mask\"}],"
    " \"params\": [{\"name\": \"min\", \"type\": \"float\", \"default\": 0.5, \"about\": \"threshold\"}]}";

/* What one node keeps between calls: the threshold and one output slice. */
typedef struct threshold_state {
    double min;
    uint64_t slice_len;
    uint8_t *out;
} threshold_state;

static int32_t start(const void *user_data, const vf_host *host, const vf_param *params,
                     uint32_t n_params, const vf_volume *inputs, uint32_t n_inputs,
                     void **state) {
    (void)user_data;
    if (n_inputs != 1 || inputs[0].shape[0] == 0 || inputs[0].dtype != VF_DTYPE_F32) {
        host->set_error(host->ctx, "c_threshold needs one image input");
        return VF_ERROR;
    }
    vf_volume desc = inputs[0]; /* same geometry */
    desc.stream_type = VF_STREAM_LABEL;
    desc.dtype = VF_DTYPE_U8;
    if (host->open_output(host->ctx, 0, &desc) != VF_OK) {
        return VF_ERROR; /* the host recorded why */
    }
    threshold_state *s = malloc(sizeof *s);
    if (s == NULL) {
        host->set_error(host->ctx, "c_threshold: out of memory");
        return VF_ERROR;
    }
    s->min = 0.5;
    for (uint32_t p = 0; p < n_params; p++) {
        if (strcmp(params[p].name, "min") == 0 && params[p].kind != VF_PARAM_UNSET) {
            s->min = params[p].float_value;
        }
    }
    s->slice_len = inputs[0].shape[2] * inputs[0].shape[3];
    s->out = malloc(s->slice_len);
    if (s->out == NULL) {
        free(s);
        host->set_error(host->ctx, "c_threshold: out of memory");
        return VF_ERROR;
    }
    *state = s;
    return VF_OK;
}

static int32_t slice(void *state, const vf_host *host, uint64_t k, const vf_slice *inputs,
                     uint32_t n_inputs) {
    threshold_state *s = state;
    if (n_inputs != 1 || inputs[0].data == NULL) {
        return VF_OK; /* no slice k in a sparse input: none in the output either */
    }
    const float *in = inputs[0].data;
    for (uint64_t n = 0; n < s->slice_len; n++) {
        s->out[n] = in[n] >= s->min ? 1 : 0;
    }
    return host->emit_slice(host->ctx, 0, k, s->out, s->slice_len);
}

static int32_t finish(void *state, const vf_host *host, int32_t completed) {
    (void)host;
    (void)completed; /* nothing is held back */
    threshold_state *s = state;
    free(s->out);
    free(s);
    return VF_OK;
}

static const vf_kind KINDS[] = {{DECL, NULL, NULL, start, slice, finish}};
static const vf_plugin PLUGIN = {VOXFLOW_PLUGIN_ABI_VERSION, 1, KINDS, "c_example"};

const vf_plugin *voxflow_plugin_entry(void) { return &PLUGIN; }
