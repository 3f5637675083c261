"""What every bench shares: the line that states the machine, and writing a figures table as CSV and markdown."""
import os, platform, secrets, subprocess
from pathlib import Path


def machine(threads:int=None) -> str:
    "CPU count, torch version, threads, device, and the commit of the code measured."
    import torch
    threads = threads or torch.get_num_threads()
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'
    here = Path(__import__('stillframes').__file__).parent
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=here, capture_output=True, text=True).stdout.strip() or 'unknown'
    changed = []
    for folder in (here, Path(__file__).resolve().parent):                  # the package and the benches (maybe two checkouts)
        r = subprocess.run(['git', 'status', '--porcelain', '--', '.'], cwd=folder, capture_output=True, text=True)
        changed.append('unknown' if r.returncode else bool(r.stdout.strip()))
    local = ' + local changes' if True in changed else ' (local changes unknown)' if 'unknown' in changed else ''
    return (f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__}, {threads} threads, "
            f"device {dev}, stillframes {commit}{local}")


def check_counts(ap, args, at_least_1=(), at_least_0=()):
    "Fail through `ap.error` (a one-line message, exit 2) where one of the named counts of `args` is given and below 1 (or 0)."
    for floor, names in ((1, at_least_1), (0, at_least_0)):
        for name in names:
            if getattr(args, name) is not None and getattr(args, name) < floor: ap.error(f"--{name.replace('_', '-')} must be >= {floor}")


def write_atomic(path:Path, text:str):
    "Write `text` (UTF-8) to `path` through a temporary file of its own and a rename, so a reader never sees half a table."
    path = Path(path)
    tmp = path.with_name(f'{path.name}.{secrets.token_hex(6)}.tmp')       # a name of its own: two writers never share one
    try: fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)      # the umask applies, as for write_text
    except FileNotFoundError: raise FileNotFoundError(f"{path}: no such folder {path.parent}") from None
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f: f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True); raise


def write_table(table, out, name:str, head:str, tail:str='', digits:int=3) -> str:
    "Print `head` and `table` as markdown (then `tail`); with `out`, also write OUT/NAME.csv and OUT/NAME.md (atomically). Returns the markdown."
    md = f"{head}\n\n{table.round(digits).to_markdown(index=False)}\n{tail}"
    print(f"\n{md}")
    if out:
        out = Path(out); out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / f'{name}.csv', table.to_csv(index=False))
        write_atomic(out / f'{name}.md', md)
    return md
