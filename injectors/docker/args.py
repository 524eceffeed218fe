"""Reading a ``docker run`` argument list the way the docker CLI does.

The wrapper passes the user's arguments to docker unchanged; it only needs to
know where the image name is (everything after it is the command), and a few
options it must respect: the network mode, detached runs, the container name
and the variables the user already sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent import InputError

__all__ = ["NETWORK_OPTIONS", "RunArgs", "parse_run_args"]

# Options of `docker run` that take a value (docker CLI 28); all others are flags.
VALUE_OPTIONS = frozenset(
    """
    --add-host -a --attach --blkio-weight --blkio-weight-device --cap-add --cap-drop
    --cgroup-parent --cgroupns --cidfile --cpu-count --cpu-percent --cpu-period
    --cpu-quota --cpu-rt-period --cpu-rt-runtime -c --cpu-shares --cpus --cpuset-cpus
    --cpuset-mems --detach-keys --device --device-cgroup-rule --device-read-bps
    --device-read-iops --device-write-bps --device-write-iops --dns --dns-opt
    --dns-option --dns-search --domainname --entrypoint -e --env --env-file --expose
    --gpus --group-add --health-cmd --health-interval --health-retries
    --health-start-interval --health-start-period --health-timeout -h --hostname
    --io-maxbandwidth --io-maxiops --ip --ip6 --ipc --isolation --kernel-memory -l
    --label --label-file
    --link --link-local-ip --log-driver --log-opt --mac-address -m --memory
    --memory-reservation --memory-swap --memory-swappiness --mount --name --net
    --net-alias --network --network-alias --oom-score-adj --pid --pids-limit
    --platform -p --publish --pull --restart --runtime --security-opt --shm-size
    --stop-signal --stop-timeout --storage-opt --sysctl --tmpfs --ulimit -u --user
    --userns --uts -v --volume --volume-driver --volumes-from -w --workdir
    """.split()
)
FLAG_OPTIONS = frozenset(
    """
    -d --detach --disable-content-trust --help --init -i --interactive
    --no-healthcheck --oom-kill-disable --privileged -P --publish-all -q --quiet
    --read-only --rm --sig-proxy -t --tty --use-api-socket
    """.split()
)
SHORT_FLAGS = frozenset("dtiPq")
# Options docker refuses next to --network container:NAME (the app then has
# no network settings of its own: ports, addresses, names and DNS are the
# namespace owner's).
NETWORK_OPTIONS = frozenset(
    """
    --network --net -p --publish -P --publish-all --expose -h --hostname
    --add-host --dns --dns-opt --dns-option --dns-search --ip --ip6
    --link --link-local-ip --mac-address --network-alias --net-alias
    """.split()
)


@dataclass
class RunArgs:
    """What the wrapper needs to know of the user's ``docker run`` arguments."""

    options: list[str]
    image: str
    command: list[str]
    network: str | None = None
    detach: bool = False
    remove: bool = False
    name: str | None = None
    env_names: set[str] = field(default_factory=set)
    # every option given, by the name it was written with (-p, --publish)
    given: list[str] = field(default_factory=list)


def _env_names_from_file(path: str) -> set[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read env file: {exc.strerror}", where=path) from exc
    names = set()
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split("=", 1)[0].strip())
    return names


def _record(args: RunArgs, option: str, value: str) -> None:
    if option in ("-e", "--env"):
        args.env_names.add(value.split("=", 1)[0])
    elif option == "--env-file":
        args.env_names |= _env_names_from_file(value)
    elif option in ("--network", "--net"):
        args.network = value
    elif option == "--name":
        args.name = value


def parse_run_args(argv: list[str]) -> RunArgs:
    """Split ``docker run`` arguments into options, image and command."""
    args = RunArgs(options=[], image="", command=[])
    i = 0
    while i < len(argv):
        item = argv[i]

        # the first non-option is the image; the rest is the command
        if item == "--" or not item.startswith("-") or item == "-":
            if item == "--":
                i += 1
            if i >= len(argv):
                break
            args.image, args.command = argv[i], list(argv[i + 1 :])
            return args
        args.options.append(item)

        # --opt=value and -ovalue forms
        name, eq, inline = item.partition("=")
        if eq and name.startswith("--"):
            args.given.append(name)
            if name in VALUE_OPTIONS:
                _record(args, name, inline)
            elif name == "--detach":
                args.detach = inline.lower() != "false"
            elif name == "--rm":
                args.remove = inline.lower() != "false"
            i += 1
            continue
        if not item.startswith("--") and len(item) > 2:
            head = item[:2]
            if head in VALUE_OPTIONS:
                args.given.append(head)
                _record(args, head, item[2:])
                i += 1
                continue
            if all(ch in SHORT_FLAGS for ch in item[1:]):
                args.given.extend(f"-{ch}" for ch in item[1:])
                args.detach |= "d" in item[1:]
                i += 1
                continue
            raise InputError(f"unknown option {item!r}", where="docker run arguments")

        # --opt value
        args.given.append(item)
        if item in VALUE_OPTIONS:
            if i + 1 >= len(argv):
                raise InputError(
                    f"option {item} needs a value", where="docker run arguments"
                )
            _record(args, item, argv[i + 1])
            args.options.append(argv[i + 1])
            i += 2
            continue
        if item not in FLAG_OPTIONS:
            # Knowing whether an option takes a value is what places the image;
            # an option newer than this table must be written as --option=value.
            raise InputError(
                f"unknown option {item!r} (write it as {item}=VALUE or"
                f" {item}=true so the image can be found)",
                where="docker run arguments",
            )
        if item in ("-d", "--detach"):
            args.detach = True
        elif item == "--rm":
            args.remove = True
        i += 1
    raise InputError("no image given", where="docker run arguments")
