#!/usr/bin/env bash
# Builds what benchmarks/gpu/run.sh needs on a CUDA machine that has PyTorch but no .NET SDK, into benchmarks/gpu/out/
# (git-ignored; carried to the device with `carry: ["benchmarks/gpu/out"]`): the GPU benchmark app, framework-dependent,
# with TorchSharp's bindings but no libtorch (the machine's PyTorch provides it), and this machine's .NET runtime packed.
set -euo pipefail
cd "$(dirname "$0")"
out=out
rm -rf "$out" && mkdir -p "$out"
dotnet publish TokenEmbed.GpuBench -c Release -o "$out/app" -r linux-x64 --no-self-contained -p:UseAppHost=false
native=$(find "${NUGET_PACKAGES:-$HOME/.nuget/packages}/torchsharp/0.107.0/runtimes/linux-x64/native" -name libLibTorchSharp.so | head -1)
cp "$native" "$out/app/"
root=$(dirname "$(readlink -f "$(command -v dotnet)")")
tar -C "$root" -cJf "$out/dotnet-runtime.tar.xz" dotnet host shared/Microsoft.NETCore.App
du -sh "$out" "$out"/*
