# setup.py: builds the extension tnl._C with the repository's CMake build (no downloads, no torch).
#
#   pip install --no-build-isolation --no-index .
#
# Environment: TNL_CUDA=AUTO|ON|OFF (default AUTO: the CUDA backend when nvcc is found, also in
# /usr/local/cuda/bin); TNL_BUILD_DIR=<dir> reuses an existing CMake build tree (only the
# target tnl_python is built there; the default is build/python-ext); TNL_CMAKE_ARGS: more
# configure arguments, e.g. "-DTNL_NATIVE=OFF" for a wheel that runs on other CPUs.
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(os.path.abspath(__file__)).parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        env = dict(os.environ)
        if Path("/usr/local/cuda/bin").is_dir():
            env["PATH"] = env.get("PATH", "") + os.pathsep + "/usr/local/cuda/bin"
        reuse = "TNL_BUILD_DIR" in env
        build_dir = Path(env["TNL_BUILD_DIR"]) if reuse else ROOT / "build" / "python-ext"
        args = ["-DTNL_BUILD_PYTHON=ON", f"-DPython_EXECUTABLE={sys.executable}"]
        if not reuse:  # our own tree: the library and the module only
            args += ["-DCMAKE_BUILD_TYPE=Release", "-DTNL_BUILD_TESTS=OFF",
                     "-DTNL_BUILD_TOOLS=OFF", f"-DTNL_CUDA={env.get('TNL_CUDA', 'AUTO')}"]
            if shutil.which("ninja") and not (build_dir / "CMakeCache.txt").exists():
                args += ["-G", "Ninja"]
        args += shlex.split(env.get("TNL_CMAKE_ARGS", ""))
        subprocess.check_call(["cmake", "-S", str(ROOT), "-B", str(build_dir), *args], env=env)
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "tnl_python",
                               "--parallel", str(os.cpu_count() or 1)], env=env)
        built = sorted((build_dir / "python" / "tnl").glob("_C.*"))
        if not built:
            raise RuntimeError(f"tnl: the CMake build left no tnl/_C module in {build_dir}")
        dest = Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], dest)


setup(
    packages=["tnl"],
    package_dir={"": "python"},
    ext_modules=[CMakeExtension("tnl._C")],
    cmdclass={"build_ext": CMakeBuild},
    options={"build": {"build_base": "build/setuptools"}},
    zip_safe=False,
)
