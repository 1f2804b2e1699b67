"""The paper's class-balanced cross entropy (Christ et al. 2017, Training):

    L = -1/n sum_i w_i log p_i(y_i)

over the n pixels of a batch, where p_i(y_i) is the softmax probability of pixel i's true class
and w_i the weight of that class. For two classes this is exactly the paper's
-1/n sum w_i [P^ log P + (1 - P^) log(1 - P)]. The paper's weights: 1 for background and
sum(1 - P^) / sum(P^) for the foreground, i.e. (pixels not of class c) / (pixels of class c),
computed from the training set's class frequencies (`frequency_weights`); or fixed weights such
as the authors' code's 1/13/120 (background/liver/lesion).
"""
import numpy as np
import torch
import torch.nn.functional as F


def frequency_weights(counts):
    """Class weights from pixel counts per class: 1 for class 0, (n - n_c) / n_c otherwise."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    w = np.ones_like(counts)
    for c in range(1, len(counts)):
        if counts[c] <= 0:
            raise ValueError(f"class {c} has no pixels in the training data: cannot weight it")
        w[c] = (n - counts[c]) / counts[c]
    return w


def balanced_cross_entropy(logits, target, weights):
    """logits [N, C, H, W], target [N, H, W] int64, weights [C] -> mean over all pixels of
    -w[y] log softmax(logits)[y] (divided by the pixel count, not by the weight sum)."""
    logp = F.log_softmax(logits, dim=1)
    picked = logp.gather(1, target.unsqueeze(1)).squeeze(1)
    w = torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)[target]
    return -(w * picked).mean()
