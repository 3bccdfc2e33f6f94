"""A strict stand-in for CuPy on NumPy, installed as ``cupy`` by the tests.

It runs the library's real GPU code (``_cupy_backend.cupy_device()``, the
``import cupy`` dispatch of the array namespace) on the CPU, with the rules of
real CuPy that a NumPy stand-in would otherwise hide:

* :class:`ndarray` is not a ``numpy.ndarray``; ``numpy.asarray`` on it raises
  CuPy's ``TypeError`` (so do scikit-learn's checks), and a host array meeting
  a device array in an operator or a namespace function raises too. Only the
  constructors (``asarray``, ``array``, ``ascontiguousarray``) and
  ``__setitem__`` copy host data to the device; ``get``/``asnumpy`` copy back.
* Reductions give 0-d device arrays; ``bool``/``float``/``int``/``item`` on
  them, ``get`` and ``asnumpy`` wait for the device: :data:`SYNCS` counts them.
* Arrays live on a device (:data:`N_DEVICES` of them): an operation on an
  array of another device than the current one raises, as CuPy does without
  peer access, and a kernel given such an array fails like an illegal address.
* ``RawModule(code=..., options=tuple)`` compiles the CUDA source as C++ and
  a launch runs every thread of the grid (bounds guards included), after
  checking each argument against the kernel's C parameter: a NumPy scalar is
  passed with its own width, an array by pointer (C-contiguous, dtype checked).

Not modelled: CuPy's type promotion (NumPy's is used), streams, memory limits,
and which functions and keywords real CuPy has.
"""

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import numpy as _np

__version__ = "0.0-fake"

#: The C++ compiler the kernels are compiled with (None: kernels unavailable).
CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
N_DEVICES = 2
SYNCS = 0  # host waits for the device so far
_current = [0]  # stack of current device ids

_IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
    "a NumPy array explicitly."
)


def reset():
    """Device 0 current, sync count 0."""
    global SYNCS
    _current[:] = [0]
    SYNCS = 0


def _sync():
    global SYNCS
    SYNCS += 1


def _unwrap(tree, where, allow_host=False):
    """The NumPy data of a tree of arguments; refuses host arrays and other devices."""
    if isinstance(tree, ndarray):
        if tree._device != _current[-1]:
            raise ValueError(
                f"{where}: the device where the array resides ({tree._device}) is different "
                f"from the current device ({_current[-1]}); peer access is unavailable."
            )
        return tree._a
    if isinstance(tree, _np.ndarray):
        if allow_host:
            return tree
        raise TypeError(f"{where}: Unsupported type <class 'numpy.ndarray'>")
    if isinstance(tree, (list, tuple)):
        return type(tree)(_unwrap(b, where, allow_host) for b in tree)
    if isinstance(tree, dict):
        return {k: _unwrap(v, where, allow_host) for k, v in tree.items()}
    return tree


def _wrap(r, device=None):
    if isinstance(r, _np.ndarray):
        return ndarray._from(r, device)
    if isinstance(r, _np.generic):
        return ndarray._from(_np.asarray(r), device)  # CuPy gives 0-d arrays, not scalars
    if isinstance(r, (tuple, list)):
        return type(r)(_wrap(b, device) for b in r)
    return r


class _Device:
    """``cupy.cuda.Device``: the current device, or device ``id`` as a context."""

    def __init__(self, device=None):
        self.id = _current[-1] if device is None else int(device)
        if not 0 <= self.id < N_DEVICES:
            raise RuntimeError(f"cudaErrorInvalidDevice: device {self.id}")

    def __enter__(self):
        _current.append(self.id)
        return self

    def __exit__(self, *exc):
        _current.pop()
        return False

    def synchronize(self):
        _sync()


class ndarray:  # noqa: N801 - CuPy's name
    """A device array: NumPy data plus the id of the device it lives on."""

    __array_priority__ = 100
    __hash__ = None

    def __init__(self, *args, **kwargs):
        raise TypeError("build fake device arrays through the namespace")

    @classmethod
    def _from(cls, a, device=None):
        obj = object.__new__(cls)
        obj._a = a
        obj._device = _current[-1] if device is None else device
        return obj

    # ---- the host boundary
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def get(self, stream=None, order="C", out=None, blocking=True):
        _sync()
        return _np.array(self._a, order=order, copy=True)

    def __bool__(self):
        _sync()
        return bool(self._a)

    def __float__(self):
        _sync()
        return float(self._a)

    def __int__(self):
        _sync()
        return int(self._a)

    def item(self):
        _sync()
        return self._a.item()

    # NumPy's functions on a device array run CuPy's (as real CuPy arranges).
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            return NotImplemented
        out = kwargs.get("out")
        if isinstance(out, tuple) and len(out) == 1:
            kwargs["out"] = out[0]
        return _namespace(ufunc.__name__)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _namespace(func.__name__)(*args, **kwargs)

    # ---- attributes and methods
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._from(self._a.T, self._device))
    device = property(lambda self: _Device(self._device))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return iter([self[i] for i in range(len(self))])

    def __repr__(self):
        return f"fake_cupy.ndarray(device={self._device}, {self._a!r})"

    def __format__(self, spec):
        return format(self.item(), spec) if self.ndim == 0 else format(repr(self), spec)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "__getitem__", allow_host=True)], self._device)

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "__setitem__", True)] = _unwrap(value, "__setitem__", True)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        target = getattr(self._a, name)
        if not callable(target):
            return _wrap(target, self._device)

        def method(*args, **kwargs):
            where = f"ndarray.{name}"
            _unwrap(self, where)
            return _wrap(target(*_unwrap(args, where), **_unwrap(kwargs, where)))

        return method

    def reshape(self, *shape, order="C"):
        return ndarray._from(self._a.reshape(*shape, order=order), self._device)

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        return ndarray._from(self._a.astype(dtype, order=order, copy=copy), self._device)


def _unary(name):
    def op(self):
        return _wrap(getattr(_unwrap(self, name), name)())

    return op


def _binary(name):
    def op(self, other):
        return _wrap(getattr(_unwrap(self, name), name)(_unwrap(other, name)))

    return op


def _inplace(name):
    def op(self, other):
        getattr(_unwrap(self, name), name)(_unwrap(other, name))
        return self

    return op


for _name in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
):
    for _fmt in ("__{}__", "__r{}__"):
        setattr(ndarray, _fmt.format(_name), _binary(_fmt.format(_name)))
    setattr(ndarray, f"__i{_name}__", _inplace(f"__i{_name}__"))
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(ndarray, f"__{_name}__", _binary(f"__{_name}__"))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", _unary(f"__{_name}__"))
ndarray.__module__ = "cupy"  # how the library recognises a CuPy array


# ---- the namespace
for _name in (
    "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint32",
    "uint64", "bool_", "intp", "dtype", "pi", "e", "inf", "nan", "newaxis", "euler_gamma",
):
    globals()[_name] = getattr(_np, _name)

_FROM_HOST = {"asarray", "array", "ascontiguousarray"}


def _namespace(name):
    return globals()[name] if name in globals() else __getattr__(name)


def __getattr__(name):
    """``cupy.<name>``: NumPy's function on device arrays only (constructors copy host data)."""
    if name.startswith("__"):
        raise AttributeError(name)
    npf = getattr(_np, name)
    if not callable(npf) or isinstance(npf, type):
        return npf

    def function(*args, **kwargs):
        where = f"cupy.{name}"
        if name in _FROM_HOST:
            src = args[0] if args else kwargs.get("a")
            if isinstance(src, ndarray) and src._device == _current[-1]:
                out = npf(src._a, *args[1:], **kwargs)
                return src if out is src._a else ndarray._from(out)
            data = src._a if isinstance(src, ndarray) else src  # a (peer) copy
            return ndarray._from(_np.array(npf(data, *args[1:], **kwargs), copy=True))
        result = npf(*_unwrap(args, where), **_unwrap(kwargs, where))
        out = kwargs.get("out")
        return out if out is not None else _wrap(result)

    function.__name__ = name
    globals()[name] = function
    return function


def argsort(a, axis=-1, kind=None):
    """CuPy's argsort: always stable, and only ``kind=None`` is documented."""
    if kind is not None:
        raise ValueError("cupy.argsort supports kind=None only")
    return _wrap(_np.argsort(_unwrap(a, "cupy.argsort"), axis=axis, kind="stable"))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order)
    return _np.asarray(a, order=order)


# ---- kernels
#: C parameter type -> (the NumPy dtype CuPy must be given, the ctypes type).
_C_TYPES = {
    "long long": (_np.int64, ctypes.c_longlong),
    "u64": (_np.uint64, ctypes.c_ulonglong),
    "unsigned long long": (_np.uint64, ctypes.c_ulonglong),
    "int": (_np.int32, ctypes.c_int),
    "double": (_np.float64, ctypes.c_double),
}
_SHIM = r"""
#include <math.h>
#define __device__ static inline
#define __global__
struct skp_dim3 { long long x; };
static skp_dim3 blockIdx = {0}, blockDim = {1}, threadIdx = {0};
"""
_LIBRARIES = {}  # hash of the source -> compiled library (one compile per test session)


def _kernel_parameters(code):
    """``{name: [(C type, is pointer, parameter name)]}`` of the ``extern "C"`` kernels."""
    kernels = {}
    for match in re.finditer(r'extern "C" __global__ void (\w+)\((.*?)\)\s*\{', code, re.S):
        params = []
        for param in match.group(2).split(","):
            const, ctype, ptr, name = re.match(
                r"(const )?([\w ]+?)\s*(\*?)\s*(\w+)$", " ".join(param.split())
            ).groups()
            params.append((ctype.strip(), bool(ptr), name))
        kernels[match.group(1)] = params
    return kernels


class RawModule:
    """CUDA source compiled as C++; one host loop per launch runs every GPU thread."""

    def __init__(self, *, code, options=(), backend="nvrtc", **kwargs):
        if not isinstance(code, str):
            raise TypeError("RawModule(code=...) must be a str")
        if not (isinstance(options, tuple) and all(isinstance(o, str) for o in options)):
            raise TypeError("RawModule(options=...) must be a tuple of str (`tuple options`)")
        if CXX is None:
            raise RuntimeError("fake cupy: no C++ compiler to compile the kernels")
        self.kernels = _kernel_parameters(code)
        drivers = "".join(
            f'extern "C" void drive_{name}(long long grid, long long block, '
            + ", ".join(f"{t}{'*' if ptr else ''} {p}" for t, ptr, p in params)
            + ") {\n  blockDim.x = block;\n"
            "  for (long long b = 0; b < grid; b++) for (long long t = 0; t < block; t++) {\n"
            f"    blockIdx.x = b; threadIdx.x = t; {name}({', '.join(p for _, _, p in params)});\n"
            "  }\n}\n"
            for name, params in self.kernels.items()
        )
        source = _SHIM + code + drivers
        key = hashlib.sha256(source.encode()).hexdigest()
        if key not in _LIBRARIES:
            # The loaded library outlives its file (removed with the folder).
            with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
                src, lib = os.path.join(folder, "kernels.cpp"), os.path.join(folder, "kernels.so")
                with open(src, "w") as f:
                    f.write(source)
                # No contraction into fused multiply-adds, as --fmad=false on the GPU.
                subprocess.run(
                    [CXX, "-O2", "-ffp-contract=off", "-shared", "-fPIC", src, "-o", lib],
                    check=True,
                )
                _LIBRARIES[key] = ctypes.CDLL(lib)
        self._lib = _LIBRARIES[key]

    def get_function(self, name):
        if name not in self.kernels:
            raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: {name}")
        return _RawKernel(self, name)


class _RawKernel:
    def __init__(self, module, name):
        self.module, self.name, self.params = module, name, module.kernels[name]

    def __call__(self, grid, block, args, **kwargs):
        if not (isinstance(grid, tuple) and isinstance(block, tuple) and isinstance(args, tuple)):
            raise TypeError("RawKernel(grid, block, args): three tuples")
        if len(grid) != 1 or len(block) != 1 or not 0 < block[0] <= 1024:
            raise ValueError(f"fake cupy: 1-D launches of at most 1024 threads, got {grid}, {block}")
        if not all(type(g) is int for g in grid + block) or grid[0] > 2**31 - 1:
            raise ValueError(f"CUDA_ERROR_INVALID_VALUE: grid {grid}, block {block}")
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.params)} parameters")
        c_args = [self._c_arg(i, arg, *param) for i, (arg, param) in enumerate(zip(args, self.params))]
        getattr(self.module._lib, f"drive_{self.name}")(
            ctypes.c_longlong(grid[0]), ctypes.c_longlong(block[0]), *c_args
        )

    def _c_arg(self, i, arg, ctype, pointer, pname):
        dtype, c_type = _C_TYPES[ctype]
        what = f"{self.name} argument {i} ({ctype}{'*' if pointer else ''} {pname})"
        if pointer:
            if not isinstance(arg, ndarray):
                raise TypeError(f"{what}: got {type(arg).__name__}, not a device array")
            if arg.dtype != dtype or not arg.flags.c_contiguous:
                raise TypeError(f"{what}: got a {'' if arg.flags.c_contiguous else 'non-'}"
                                f"contiguous {arg.dtype} array")
            if arg._device != _current[-1]:
                raise RuntimeError(f"cudaErrorIllegalAddress: {what} is memory of device "
                                   f"{arg._device}, the kernel runs on device {_current[-1]}")
            return ctypes.c_void_p(arg._a.ctypes.data)
        if not isinstance(arg, _np.generic) or _np.dtype(type(arg)) != _np.dtype(dtype):
            # CuPy passes a NumPy scalar with its own width (and a Python int
            # as a long long): any other type reads the wrong bytes on a GPU.
            raise TypeError(f"{what}: got {type(arg).__name__}, expected numpy.{_np.dtype(dtype)}")
        return c_type(arg.item())


class _Runtime:
    @staticmethod
    def getDeviceCount():  # noqa: N802 - CuPy's name
        return N_DEVICES

    @staticmethod
    def getDeviceProperties(device_id):  # noqa: N802 - CuPy's name
        return {"name": b"fake_cupy device (NumPy)"}


class _Cuda:
    Device = _Device
    runtime = _Runtime()


cuda = _Cuda()
