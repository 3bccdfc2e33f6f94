"""First-order optimizers that update a list of parameter arrays in place.

The arrays may be NumPy or CuPy (GPU training): the updates use operators and
functions of the arrays' own namespace. ``_state_arrays`` names every array of
an optimizer's state, so the estimators can move a whole optimizer between
host and device (:func:`move_optimizer`).
"""

import numba as nb
import numpy as np

from ._noise import _array_namespace


# error_model="numpy": no zero-division check, which would keep the loop from vectorizing.
@nb.njit(cache=True, error_model="numpy")
def _adam_update(p, m, s, g, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon,
                 step_size):
    """One fused pass of Adam's update over flat NumPy arrays, in place.

    The same roundings as the NumPy sequence in :meth:`AdamOptimizer.step`
    (no fastmath, so no fused multiply-adds): the scalars come cast to the
    parameters' dtype, as NumPy casts Python floats, and ``step_size`` keeps
    its float64, so the last stage runs in float64 for a float32 model too.
    One pass instead of eleven: on the 30k weights of a (300, 100) MLP a
    step took 190 us as NumPy ufuncs.
    """
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] * beta_1 + gi * one_minus_beta_1
        si = s[i] * beta_2 + (gi * one_minus_beta_2) * gi
        m[i] = mi
        s[i] = si
        p[i] -= (mi * step_size) / (np.sqrt(si) + epsilon)


def move_optimizer(optimizer, params, convert):
    """Point ``optimizer`` at ``params`` and pass its state arrays through ``convert``."""
    optimizer.params = params
    for name in optimizer._state_arrays:
        setattr(optimizer, name, [convert(a) for a in getattr(optimizer, name)])
    if hasattr(optimizer, "_buffers"):
        optimizer._buffers = None  # scratch space of the old arrays' namespace


class SGDOptimizer:
    """Stochastic gradient descent with (Nesterov) momentum.

    Parameters
    ----------
    params : list of ndarray
        Updated in place.
    learning_rate_init : float
    learning_rate : {'constant', 'invscaling', 'adaptive'}
        'invscaling' decays the step as ``learning_rate_init / t**power_t``
        with t the number of samples seen; 'adaptive' divides it by 5 when
        the training stalls (see :meth:`on_plateau`).
    momentum : float
    nesterov : bool
    power_t : float
    """

    def __init__(self, params, learning_rate_init=0.1, learning_rate="constant",
                 momentum=0.9, nesterov=True, power_t=0.5):
        self.params = params
        self.learning_rate_init = learning_rate_init
        self.lr = float(learning_rate_init)
        self.schedule = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocities = [_array_namespace(p).zeros_like(p) for p in params]

    _state_arrays = ("velocities",)

    def step(self, grads, n_seen):
        """Apply one update; ``n_seen`` is the number of samples seen so far."""
        if self.schedule == "invscaling":
            self.lr = self.learning_rate_init / (n_seen + 1) ** self.power_t
        for p, v, g in zip(self.params, self.velocities, grads):
            v *= self.momentum
            v -= self.lr * g
            if self.nesterov:
                p += self.momentum * v - self.lr * g
            else:
                p += v

    def on_plateau(self, verbose=False):
        """Shrink the step when training stalls; return False when it is too small to go on."""
        if self.schedule != "adaptive" or self.lr <= 1e-6:
            return False
        self.lr /= 5.0
        if verbose:
            print(f"Setting learning rate to {self.lr:f}")
        return True


class AdamOptimizer:
    """Adam (Kingma & Ba, 2014) with bias-corrected moment estimates.

    With ``learning_rate='adaptive'`` the step is divided by 5 when the
    training stalls, at most ``MAX_DECAYS`` times (see :meth:`on_plateau`).
    """

    def __init__(self, params, learning_rate_init=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 learning_rate="constant"):
        self.params = params
        self.learning_rate_init = learning_rate_init
        self.lr = float(learning_rate_init)
        self.schedule = learning_rate
        self.n_decays = 0
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.first = [_array_namespace(p).zeros_like(p) for p in params]
        self.second = [_array_namespace(p).zeros_like(p) for p in params]
        self._buffers = None  # scratch arrays, made on the first step

    _state_arrays = ("first", "second")

    def step(self, grads, n_seen):
        self.t += 1
        correction = np.sqrt(1 - self.beta_2**self.t) / (1 - self.beta_1**self.t)
        step_size = self.lr * correction
        xp = _array_namespace(self.params[0])
        if xp is np and all(a.flags.c_contiguous for a in self.params + self.first + self.second):
            for p, m, s, g in zip(self.params, self.first, self.second, grads):
                cast = p.dtype.type
                _adam_update(
                    p.reshape(-1), m.reshape(-1), s.reshape(-1),
                    np.ascontiguousarray(g, dtype=p.dtype).reshape(-1),
                    cast(self.beta_1), cast(1 - self.beta_1), cast(self.beta_2),
                    cast(1 - self.beta_2), cast(self.epsilon), np.float64(step_size),
                )
            return
        if self._buffers is None:
            # The last stage runs in the dtype of step_size * m (float64 for a
            # float32 model, as NumPy promotes it), hence its own buffer then.
            self._buffers = []
            for m in self.first:
                a = xp.empty_like(m)
                c_dtype = np.result_type(step_size, m.dtype)
                c = a if c_dtype == m.dtype else xp.empty(m.shape, c_dtype)
                self._buffers.append((a, xp.empty_like(m), c))
        # The same operations in the same order as
        #   m = b1·m + (1-b1)·g;  s = b2·s + ((1-b2)·g)·g;  p -= (step·m) / (√s + eps)
        # written into scratch arrays instead of fresh temporaries.
        for p, m, s, g, (a, b, c) in zip(self.params, self.first, self.second, grads,
                                         self._buffers):
            m *= self.beta_1
            xp.multiply(g, 1 - self.beta_1, out=a)
            m += a
            s *= self.beta_2
            xp.multiply(g, 1 - self.beta_2, out=a)
            a *= g
            s += a
            xp.sqrt(s, out=b)
            b += self.epsilon
            xp.multiply(m, step_size, out=c)
            c /= b
            p -= c

    def __getstate__(self):
        # Scratch space is not state: keep pickles of fitted estimators small.
        state = self.__dict__.copy()
        state["_buffers"] = None
        return state

    def __setstate__(self, state):
        # Pickles made before the 'adaptive' schedule existed kept a constant step.
        self.__dict__.update({"schedule": "constant", "n_decays": 0, **state})

    #: 'adaptive' divides the step by 5 at most this many times.
    MAX_DECAYS = 2

    def on_plateau(self, verbose=False):
        """Shrink the step when training stalls ('adaptive'); False when done."""
        if self.schedule != "adaptive" or self.n_decays >= self.MAX_DECAYS:
            return False
        self.lr /= 5.0
        self.n_decays += 1
        if verbose:
            print(f"Setting learning rate to {self.lr:f}")
        return True
