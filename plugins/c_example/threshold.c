/* Example voxflow plugin in C: `c_threshold` turns an image into a label (1 where value >= min).
 * Build: cc -shared -fPIC -O2 -I plugins/abi -o libc_threshold.so plugins/c_example/threshold.c */
#include <stddef.h>
#include <string.h>
#include "voxflow_plugin.h"

static const char DECL[] =
    "{\"kind\": \"c_threshold\","
    " \"about\": \"Label 1 where the image is >= min, else 0 (C example plugin)\","
    " \"inputs\": [{\"name\": \"in\", \"type\": \"image\", \"about\": \"image\"}],"
    " \"outputs\": [{\"name\": \"out\", \"type\": \"label\", \"about\": \"mask\"}],"
    " \"params\": [{\"name\": \"min\", \"type\": \"float\", \"default\": 0.5, \"about\": \"threshold\"}]}";

static int32_t run(const void *user_data, const vf_host *host, const vf_param *params,
                   uint32_t n_params, const vf_volume *inputs, uint32_t n_inputs) {
    (void)user_data;
    double min = 0.5;
    for (uint32_t p = 0; p < n_params; p++) {
        if (strcmp(params[p].name, "min") == 0 && params[p].kind != VF_PARAM_UNSET) {
            min = params[p].float_value;
        }
    }
    if (n_inputs != 1 || inputs[0].data == NULL || inputs[0].dtype != VF_DTYPE_F32) {
        host->set_error(host->ctx, "c_threshold needs one image input");
        return VF_ERROR;
    }
    vf_volume desc = inputs[0]; /* same geometry */
    desc.stream_type = VF_STREAM_LABEL;
    desc.dtype = VF_DTYPE_U8;
    uint8_t *out = (uint8_t *)host->alloc_output(host->ctx, 0, &desc);
    if (out == NULL) {
        return VF_ERROR; /* the host recorded why */
    }
    const float *in = (const float *)inputs[0].data;
    for (uint64_t n = 0; n < inputs[0].len; n++) {
        out[n] = in[n] >= min ? 1 : 0;
    }
    return VF_OK;
}

static const vf_kind KINDS[] = {{DECL, run, NULL}};
static const vf_plugin PLUGIN = {VOXFLOW_PLUGIN_ABI_VERSION, 1, KINDS, "c_example"};

const vf_plugin *voxflow_plugin_entry(void) { return &PLUGIN; }
