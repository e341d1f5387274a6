"""The input rules, each defined once: what the engine accepts from users and stored files.

Owns: the `OTA` keyword, the secrets file names, what counts as a configuration file (by name,
and on disk: a regular file inside the folder, a link only to a file inside it), and what an
upload port may be (by syntax, and on disk: a serial device must be a terminal). The pure
checks (`configuration_name_problem`, `validate_configuration_name`, `validate_port`) run
anywhere; the `check_*` functions look at the file system and are blocking (run them in an
executor). Every message echoes input through `errors.shown`.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from pathlib import Path
import re
import stat
from typing import Final

from .errors import InvalidConfigurationError, InvalidPortError, is_plain_text, shown

OTA_PORT: Final = "OTA"
"""The upload port meaning "over the network, to the address ESPHome finds" (the default)."""
SECRETS_FILES: Final = ("secrets.yaml", "secrets.yml")
"""The files ESPHome reads `!secret` values from; never device configurations."""
CONFIGURATION_SUFFIXES: Final = (".yaml", ".yml")
CONFIGURATION_NAME_MAX: Final = 255
PORT_MAX: Final = 255
TTY_DRIVERS: Final = Path("/proc/tty/drivers")
"""Linux's table of terminal drivers: which character devices are TTYs, without opening one."""
NOT_A_TERMINAL: Final = "it is not a serial port (not a terminal device)"

_HOST_LABEL_RE: Final = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_COM_PORT_RE: Final = re.compile(r"^COM[1-9][0-9]{0,2}$", re.IGNORECASE)
# Serial ports reached over the network (pyserial URLs): no local device to check.
_URL_PORT_RE: Final = re.compile(
    r"^(socket|rfc2217)://(?P<host>\[[^\]]+\]|[^:/\[\]]+):(?P<port>\d{1,5})$"
)
_SERIAL_PATH_RE: Final = re.compile(r"^/dev/[A-Za-z0-9._/+:@-]+$")


def configuration_name_problem(name: object) -> str | None:
    """Return why `name` cannot name a configuration file, or None when it can.

    A configuration is a top-level `.yaml`/`.yml` file of the folder: a leaf name only, not
    hidden, not a secrets file, nothing `shown` would escape (so a valid name is always echoed
    as it is), at most CONFIGURATION_NAME_MAX long.
    """
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > CONFIGURATION_NAME_MAX:
        return "it is too long"
    if not is_plain_text(name):
        return "it contains control or invisible formatting characters"
    if "/" in name or "\\" in name:
        return "it must be a file name in the configuration folder, not a path"
    if name.startswith("."):
        return "hidden files are not configurations"
    if not name.lower().endswith(CONFIGURATION_SUFFIXES) or name.rsplit(".", 1)[0] == "":
        return "it must be a .yaml or .yml file"
    if name.lower() in SECRETS_FILES:
        return f"{name} holds secrets, it is not a device configuration"
    return None


def is_configuration_file_name(name: object) -> bool:
    """Return True when `name` may name a configuration file (see configuration_name_problem)."""
    return configuration_name_problem(name) is None


def validate_configuration_name(name: str) -> str:
    """Return `name` when it is a plain YAML file name in the config folder, else raise.

    Pure: the file itself is checked by `check_configuration_file`.
    """
    problem = configuration_name_problem(name)
    if problem is not None:
        raise InvalidConfigurationError(
            f"Invalid configuration name '{shown(name)}': {problem}", configuration=str(name)
        )
    return name


def configuration_file_problem(config_dir: Path, name: str) -> str | None:
    """Return why `config_dir/name` is not a usable configuration file, or None. Blocking.

    Besides the name rules: it exists and is a regular file, and a symbolic link must lead to
    a file inside the configuration folder (ESPHome would otherwise read, and the fingerprint
    hash, a file the user never put in the folder).
    """
    problem = configuration_name_problem(name)
    if problem is not None:
        return problem
    path = config_dir / name
    try:
        info = path.lstat()
    except FileNotFoundError:
        return "it does not exist"
    except OSError as err:
        return f"it cannot be read ({err.strerror})"
    if stat.S_ISLNK(info.st_mode):
        try:
            target = path.resolve(strict=True)
            inside = target.is_relative_to(config_dir.resolve(strict=True))
            info = target.stat()
        except FileNotFoundError:
            return "it is a link to a file that does not exist"
        except OSError as err:  # a link loop, or a folder on the way we may not enter
            return f"it is a link that cannot be followed ({err.strerror or err})"
        if not inside:
            return "it is a link to a file outside the configuration folder"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    return None


def check_configuration_file(config_dir: Path, name: str) -> Path:
    """Return the path of configuration `name` when it is usable, else raise. Blocking.

    Raises InvalidConfigurationError with the reason (see configuration_file_problem).
    """
    problem = configuration_file_problem(config_dir, name)
    if problem is not None:
        raise InvalidConfigurationError(
            f"Invalid configuration '{shown(name)}': {problem}", configuration=str(name)
        )
    return config_dir / name


def _is_host_name(value: str) -> bool:
    host = value.removesuffix(".")
    if not host or len(host) > 253:
        return False
    labels = host.split(".")
    # A name made only of digits and dots is a malformed IPv4 address, not a host name.
    if all(label.isdigit() for label in labels):
        return False
    return all(_HOST_LABEL_RE.match(label) for label in labels)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def validate_port(port: str) -> str:
    """Return the stripped port when it is OTA, a host/IP, a serial device or a serial URL.

    Pure syntax: `check_serial_port` also checks that a serial device is one.
    """
    value = port.strip() if isinstance(port, str) else ""
    if value.upper() == OTA_PORT:
        # "ota" is no host anyone means: it is the OTA keyword typed in lower case.
        return OTA_PORT
    valid = False
    if not value or len(value) > PORT_MAX:
        valid = False
    elif _COM_PORT_RE.match(value):
        valid = True
    elif value.startswith("/"):
        valid = bool(_SERIAL_PATH_RE.match(value)) and ".." not in value.split("/")
    elif match := _URL_PORT_RE.match(value):
        host = match["host"]
        host = host[1:-1] if host.startswith("[") else host
        valid = (_is_ip(host) or _is_host_name(host)) and 0 < int(match["port"]) < 65536
    else:
        valid = _is_ip(value) or _is_host_name(value)
    if not valid:
        raise InvalidPortError(
            f"Invalid upload port '{shown(port)}': use OTA, a host name or IP address, "
            "a serial device such as /dev/ttyUSB0 or COM3, or socket://host:port",
            port=str(port),
        )
    return value


def check_serial_port(port: str) -> str:
    """Return the validated port; a serial device must be a TTY of this system. Blocking.

    OTA, hosts and serial URLs (`socket://`, `rfc2217://`) pass after the syntax check. A
    device path must be a character device that is a terminal (not /dev/null, not a disk);
    COM names exist only on Windows, where the engine does not run. Raises InvalidPortError.
    """
    value = validate_port(port)
    if _COM_PORT_RE.match(value):
        problem: str | None = "COM ports are Windows names; use the /dev path of the port"
    elif value.startswith("/"):
        problem = _serial_device_problem(value)
    else:
        problem = None
    if problem is not None:
        raise InvalidPortError(f"Invalid upload port '{shown(port)}': {problem}", port=str(port))
    return value


def _serial_device_problem(path: str) -> str | None:
    try:
        info = Path(path).stat()
    except FileNotFoundError:
        return "there is no such device"
    except OSError as err:
        return f"it cannot be read ({err.strerror})"
    if not stat.S_ISCHR(info.st_mode):
        return "it is not a serial port (not a character device)"
    is_tty = _is_tty_device(info.st_rdev)
    if is_tty is None:
        return _tty_open_problem(path)
    return None if is_tty else NOT_A_TERMINAL


def _is_tty_device(device: int) -> bool | None:
    """Look the device number up in the kernel's TTY driver table; None when there is none.

    Preferred to opening the port: opening a serial port raises DTR and RTS, which resets many
    ESP boards (and would disturb an upload already using it).
    """
    try:
        table = TTY_DRIVERS.read_text(encoding="utf-8")
    except OSError:
        return None
    major, minor = os.major(device), os.minor(device)
    for line in table.splitlines():
        # "<driver> <path prefix> <major> <minor or first-last> <type>"
        fields = line.split()
        if len(fields) < 4 or not fields[2].isdigit() or int(fields[2]) != major:
            continue
        first, _, last = fields[3].partition("-")
        last = last or first
        if first.isdigit() and last.isdigit() and int(first) <= minor <= int(last):
            return True
    return False


def _tty_open_problem(path: str) -> str | None:
    """Open the device without making it our terminal and ask if it is one (no TTY table)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.EBUSY:
            return None  # held exclusively by another program: a port in use
        return f"it cannot be opened ({err.strerror})"
    try:
        return None if os.isatty(fd) else NOT_A_TERMINAL
    finally:
        os.close(fd)
