# Cross build for 64-bit ARM Linux (Debian/Ubuntu cross toolchain), with ctest running the
# test binaries under qemu user-mode emulation:
#   apt-get install gcc-aarch64-linux-gnu qemu-user-static   (+ libcmocka-dev:arm64 for tests)
#   cmake -S . -B build-arm -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DEDGELLM_KERNELS_ONLY=ON
# `-cpu max` gives the emulated CPU every extension qemu knows (Advanced SIMD, dotprod, i8mm,
# fp16); scripts/test-arm also runs the tests on an emulated core without dotprod.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(EDGELLM_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${EDGELLM_CROSS_TRIPLE}-gcc)

# The loader and libc both from the cross toolchain (LD_LIBRARY_PATH): a multiarch libc6:arm64
# (pulled in by libcmocka0:arm64) may be a different build, and ld.so + libc.so of two builds
# hang in pthread_create. Other libraries (libcmocka) come from /usr/lib/aarch64-linux-gnu.
set(CMAKE_CROSSCOMPILING_EMULATOR
    "qemu-aarch64-static;-cpu;max;-E;LD_LIBRARY_PATH=/usr/${EDGELLM_CROSS_TRIPLE}/lib:/usr/lib/${EDGELLM_CROSS_TRIPLE};-L;/usr/${EDGELLM_CROSS_TRIPLE}")

# Headers and libraries of the target: the cross libc in /usr/aarch64-linux-gnu, and
# Debian multiarch packages (libcmocka-dev:arm64, ...) in /usr/lib/aarch64-linux-gnu.
set(CMAKE_FIND_ROOT_PATH /usr/${EDGELLM_CROSS_TRIPLE})
set(CMAKE_LIBRARY_ARCHITECTURE ${EDGELLM_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config must see only arm64 .pc files, never the host's x86-64 ones.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${EDGELLM_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
