"""cuda_library: compiles .cu files with the CUDA toolkit's nvcc through a genrule.

Bazel 4.2.3 has no CUDA rules offline; nvcc is driven directly. Each .cu becomes one
object; the objects feed a cc_library that links libcudart and cuBLAS. With
`--config=cpu` (define cuda=off) the library is empty and MOE_HAVE_CUDA is not defined,
so a build works on a machine without the toolkit.
"""

NVCC = "/usr/local/cuda/bin/nvcc"

# sm_90a SASS for the H100/H200, plus compute_90 PTX so newer GPUs can JIT it.
NVCC_ARCH_FLAGS = "-gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_90,code=compute_90"

def cuda_library(name, srcs, hdrs = [], deps = [], nvcc_flags = "", **kwargs):
    objs = []
    for src in srcs:
        obj = name + "_" + src.replace("/", "_").replace(".cu", ".o")
        native.genrule(
            name = name + "_" + src.replace("/", "_").replace(".cu", "_nvcc"),
            srcs = [src] + native.glob(["**/*.h", "**/*.cuh"]),
            outs = [obj],
            cmd = (NVCC + " -c -O3 -std=c++17 -Xcompiler -fPIC " + NVCC_ARCH_FLAGS +
                   " --expt-relaxed-constexpr -DMOE_HAVE_CUDA=1 -I. -I$(GENDIR) " + nvcc_flags +
                   " $(location " + src + ") -o $@"),
        )
        objs.append(obj)
    native.cc_library(
        name = name,
        srcs = select({
            "//bazel:cuda_off": [],
            "//conditions:default": objs,
        }),
        hdrs = hdrs,
        defines = select({
            "//bazel:cuda_off": [],
            "//conditions:default": ["MOE_HAVE_CUDA=1"],
        }),
        deps = deps + select({
            "//bazel:cuda_off": [],
            "//conditions:default": ["//third_party:cuda_runtime"],
        }),
        **kwargs
    )
