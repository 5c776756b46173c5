"""Small immutable values compared by their fields, for the short-lived paths.

`dataclasses` imports inspect, re and typing, which together cost more of a hook's or MCP
server's start than everything relay does; these few value types need only what is here.
"""


class Record:
    """Fields are the subclass's `__slots__`, set once by its __init__ through `_fields`;
    equality, hashing and repr go by those fields, and assigning to one afterwards is an error."""

    __slots__: tuple[str, ...] = ()

    def _fields(self, **values: object) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, values[name])

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and type(other) is type(self) and other._values() == self._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({inner})"
