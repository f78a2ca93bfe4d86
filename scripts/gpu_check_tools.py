"""The Python half of scripts/gpu_check.sh: its checks before a part runs, and the lines it prints after.

A device call returns only what the script printed and a few small files, so every check ends in one
line that names what is wrong and what to do, and every figure line says what it measured.

    python scripts/gpu_check_tools.py wheels DIR           wheel tags against this interpreter
    python scripts/gpu_check_tools.py imports MODULE...    each module imports, else one line naming them
    python scripts/gpu_check_tools.py train JSON LABEL     a `harness train --json` result, in two lines
    python scripts/gpu_check_tools.py part0 LSTM GPT STATUS    part 0's figures as one JSON line
    python scripts/gpu_check_tools.py trials RESULTS STUDY     each trial's telemetry from the study
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
from pathlib import Path

REBUILD = "bash scripts/gpu_wheels.sh --arch {arch} --python {py}"


def _supported_tags() -> set[str] | None:
    """The interpreter's wheel tags from `packaging` (Optuna's own dependency, on the GPU images), or None."""
    try:
        from packaging import tags
    except ImportError:
        return None
    return {str(t) for t in tags.sys_tags()}


def _plain_match(name: str) -> bool:
    """Without `packaging`: the wheel's Python tag and platform against this interpreter's version and machine."""
    parts = name[: -len(".whl")].split("-")
    python, plat = parts[-3], parts[-1]
    here = f"{sys.version_info.major}{sys.version_info.minor}"
    return any(p in ("py3", f"py{here}", f"cp{here}") for p in python.split(".")) and (
        plat == "any" or platform.machine() in plat)


def wheel_tags(name: str) -> set[str]:
    """Every python-abi-platform triple a wheel's file name (PEP 427) claims, compressed sets expanded."""
    parts = name[: -len(".whl")].split("-")
    python, abi, plat = parts[-3:]
    return {f"{p}-{a}-{q}" for p in python.split(".") for a in abi.split(".") for q in plat.split(".")}


def check_wheels(folder: Path) -> int:
    py, arch = f"{sys.version_info.major}.{sys.version_info.minor}", platform.machine()
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        print(f"gpu_check: {folder} holds no wheels: build it where there is network with "
              f"{REBUILD.format(arch=arch, py=py)}")
        return 1
    supported = _supported_tags()
    wrong = [w.name for w in wheels if not (wheel_tags(w.name) & supported if supported is not None
                                             else _plain_match(w.name))]
    if wrong:
        print(f"gpu_check: {len(wrong)} of the {len(wheels)} wheels in {folder} are for another interpreter than this "
              f"one (Python {py} on {arch}), e.g. {wrong[0]}: rebuild the folder with {REBUILD.format(arch=arch, py=py)}")
        return 1
    print(f"{len(wheels)} wheels in {folder} match Python {py} on {arch}")
    return 0


def check_imports(modules: list[str]) -> int:
    broken = {}
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as e:  # an ImportError, or a package that breaks while importing
            broken[module] = f"{type(e).__name__}: {e}"
    if broken:
        first = next(iter(broken.values()))
        print(f"gpu_check: {', '.join(broken)} do{'es' if len(broken) == 1 else ''} not import with {sys.executable} "
              f"({first}): where there is network run bash scripts/gpu_wheels.sh, then carry wheels/ with the "
              f"checkout (README, 'GPU machines')")
        return 1
    print(f"imports: {' '.join(modules)}")
    return 0


def _fmt(value, spec: str) -> str:
    return "null" if value is None else format(value, spec)


def figures(result: dict) -> dict:
    """What part 0 reports of one `harness train` run, each figure as the run recorded it (null: not measured)."""
    t = result["telemetry"]
    return {
        "device": t["telemetry_device"], "telemetry_source": t["telemetry_source"],
        "precision": result["precision"]["summary"], "train_chars_per_s": result["train_chars_per_s"],
        "device_seconds": result["device_seconds"], "val_bpc": result["val_bpc"],
        "util_mean_pct": t["util_mean"], "util_p95_pct": t["util_p95"], "power_mean_w": t["power_mean_w"],
        "energy_j": t["energy_j"], "joules_per_char": t["joules_per_char"], "mfu": t["mfu"],
        "peak_mem_bytes": t["peak_mem_bytes"], "peak_mem_source": t["peak_mem_source"],
        "process_sm_util_mean_pct": t["process_sm_util_mean"],
        "nvml_unsupported": t["unsupported"], "nvml_missing_readings": t.get("missing_readings", {}),
    }


def load_result(path: Path) -> dict:
    """`harness train --json`'s last line (what it printed), or a run's result.json."""
    text = path.read_text().strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text.splitlines()[-1])


def print_train(path: Path, label: str) -> int:
    f = figures(load_result(path))
    print(f"== {label}: held-out {_fmt(f['val_bpc'], '.4f')} bpc, {f['train_chars_per_s']:,.0f} chars/s, "
          f"{f['device_seconds']:.1f} device-s, {f['precision']} ({f['device']})")
    print(f"   training windows: GPU util mean {_fmt(f['util_mean_pct'], '.1f')}% p95 {_fmt(f['util_p95_pct'], '.1f')}%, "
          f"power {_fmt(f['power_mean_w'], '.1f')} W, energy {_fmt(f['energy_j'], '.1f')} J, "
          f"MFU {_fmt(f['mfu'] and f['mfu'] * 100, '.2f')}%, peak memory "
          f"{_fmt(f['peak_mem_bytes'] and f['peak_mem_bytes'] / 2**20, ',.0f')} MiB ({f['peak_mem_source']}); "
          f"source {f['telemetry_source']}")
    print(f"   NVML fields null for the whole run: {', '.join(f['nvml_unsupported']) or 'none'}; readings with no "
          f"answer: {f['nvml_missing_readings'] or 'none'}")
    return 0


def print_part0(lstm: Path, gpt: Path, status: Path) -> int:
    sweep = json.loads(status.read_text().strip().splitlines()[-1])
    line = {
        "gpu_check": "part 0", "python": sys.version.split()[0],
        "lstm_20s": figures(load_result(lstm)), "gpt_20s": figures(load_result(gpt)),
        "sweep_2_trials": {"counts": sweep["counts"], "best_bpc": (sweep.get("best") or {}).get("bpc"),
                           "device_seconds": [t["device_seconds"] for t in sweep["trials"]]},
    }
    print(json.dumps(line))
    return 0


def print_trials(results: Path, study_name: str) -> int:
    import optuna

    from harness.search import open_storage

    study = optuna.load_study(study_name=study_name, storage=open_storage(results))
    for t in study.trials:
        a = t.user_attrs
        print(f"trial {t.number} {t.state.name}: util {a.get('util_mean')}, chars/s {a.get('train_chars_per_s')}, "
              f"energy {a.get('energy_j')} J, unsupported {a.get('unsupported')}, missing {a.get('missing_readings')}")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    command, args = argv[0], argv[1:]
    if command == "wheels":
        return check_wheels(Path(args[0]))
    if command == "imports":
        return check_imports(args)
    if command == "train":
        return print_train(Path(args[0]), args[1])
    if command == "part0":
        return print_part0(*map(Path, args[:3]))
    if command == "trials":
        return print_trials(Path(args[0]), args[1])
    print(f"gpu_check_tools: unknown command {command!r}\n{__doc__}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
