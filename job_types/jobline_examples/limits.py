"""The example types' numbers, said once."""

MAX_SLEEP_S = 600
"""The longest `sleep`."""
MAX_TIMEOUT_S = 600
"""The longest `http.request` timeout."""
MAX_BODY_BYTES = 64 * 1024
"""`http.request` keeps at most this much of a response body."""
URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://"
    r'([!"$-.0->A-~]*@)?'  # userinfo: printable, no / ? # @ (sent as Basic authorization)
    r"([A-Za-z0-9._~\-]+|\[[0-9A-Fa-f:.]+\])"  # host: a name, an IPv4 or a bracketed IPv6
    r"(:[0-9]{1,5})?"  # port
    r"([/?#][!-~]*)?$"  # path, query, fragment
)
"""What `http.request` accepts as its URL, in the published schema and at submit alike (every `-`
in a class escaped: valid in Python's `re` and in ECMAScript's `u` and `v` modes alike)."""
MAX_STEPS = 1_000_000
"""The most steps a `steps` job may count."""
MAX_STEP_S = 60
"""The longest step of a `steps` job."""
STEPS_MAX_RUNTIME_S = 24 * 3600
"""How long a `steps` job may run across its invocations (its `max_runtime_s`)."""
