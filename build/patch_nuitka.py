"""Patch the pinned Nuitka's C runtime so a compiled program no longer imports `inspect` at every start.

Nuitka 4.3.3's `main()` calls `patchInspectModule()` before running the program. That function imports
`inspect` (and with it ast, dis, tokenize, enum, re, collections, ...) to replace
`inspect.getgeneratorstate`/`getcoroutinestate` with versions that understand compiled generators and
coroutines, replaces `types.coroutine`, and compiles a small Python patch for `types` and `inspect`: more
than half of the start-up time of a compiled hello world. Nuitka has no switch to turn it off (its source
has a TODO asking for an import hook instead), and dropping the call makes `inspect.getgeneratorstate`
wrong on compiled generators.

This script makes the patching happen when the modules are first loaded instead:
- `types`: `types.coroutine` is replaced as soon as `types` is loaded (cheap, no compiling);
- `inspect`: everything else that `patchInspectModule()` does runs when `inspect` is first loaded, or
  when the replaced `types.coroutine` first needs the wrapper that patch creates;
- Nuitka's meta path loader (through which every module of a standalone binary is loaded) calls the
  hook right after a module is loaded; at start only a module already loaded by then is patched.
Python >= 3.12 (where the same function also patches `sys` and `typing`) and non-standalone builds
(whose stdlib is not loaded through Nuitka's loader) keep the eager call.

It also makes the loader's module-table lookup (run for every import, entry after entry) compare
each plain entry's name in place, where Nuitka first copied it into a buffer: the lookups cost in
proportion to the number of modules frozen in, and every frozen-in module, used or not, made every
import of every start slower. strcmp is called only for an entry whose first character matches.

And it turns the cyclic garbage collector off right after the interpreter is initialised: the
objects Nuitka's own start-up imports allocate are no garbage, yet it ran ~9 times (3.5 % of a
hook's instructions) before relay's entry point, which turns it off first thing anyway, could do
so; relay's long-lived commands turn it back on.

And a standalone program restores the PATH it changed for its start without importing `os`: Nuitka
imported `os` (with `stat`, `posixpath` and `_collections_abc`'s ~30 abstract classes; 7.5 M
instructions, a quarter of `relay --version`) only to write the old value back through `os.environ`.
While `os` is not loaded yet, the C environment and the `posix.environ` dict that `os.environ` will
wrap once it is imported are set directly, so a start that needs no `os` pays for none.

Two more imports every start made for nothing: every compiled package computed its `__path__` as
`os.path.dirname(__file__)`, importing `os` at the program's first package (relay) whatever the
program did next, and is given `__file__.rpartition(os.sep)[0]` instead, the same dir for the
`.../pkg/__init__.py` paths Nuitka gives packages; and the loader asked for "importlib._bootstrap",
which imports the `importlib` package and `warnings` (~1.5 M instructions), where "_frozen_importlib",
the same module object and loaded since the interpreter's start, is enough for the functions it
takes from it (`_spec_from_module`, `ModuleSpec`, the module locks).

Every file is checked against the sha256 of the exact Nuitka text this was written for: on any other
Nuitka the build stops with an error instead of silently building unpatched. Running it again on a
venv it already patched is a no-op.

    <build venv>/bin/python build/patch_nuitka.py
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys

MARK = "session-relay build patch (build/patch_nuitka.py)"

# The deferred-patch functions, added to InspectPatcher.c after patchInspectModule().
_DEFERRED_FUNCTIONS = f"""
// {MARK}: patch "types" and "inspect" when first loaded instead of importing
// "inspect" at every start. Nuitka's meta path loader calls relayPatchModuleOnLoad() right after it
// loaded a module; relayPatchInspectModuleAtStart() replaces the eager call in main().
#if PYTHON_VERSION >= 0x3c0 || !_NUITKA_STANDALONE_MODE
#define RELAY_PATCH_EAGERLY 1
#else
#define RELAY_PATCH_EAGERLY 0
#endif

#if !RELAY_PATCH_EAGERLY
static bool relayIsModuleLoaded(PyThreadState *tstate, char const *name) {{
    PyObject *module = Nuitka_GetModuleString(tstate, name);
    Py_XDECREF(module);
    return module != NULL;
}}
#endif

void relayPatchInspectModuleAtStart(PyThreadState *tstate) {{
#if RELAY_PATCH_EAGERLY
    // 3.12+ also patches "sys" and "typing" in there, and without standalone mode the standard library
    // is not loaded through Nuitka's loader: keep Nuitka's eager patching for those.
    patchInspectModule(tstate);
#else
    // Anything loaded before the loader hook existed is patched now, the rest when it is loaded.
#if PYTHON_VERSION >= 0x350
    if (relayIsModuleLoaded(tstate, "types")) {{
        relayPatchTypesModule(tstate);
    }}
#endif
    if (relayIsModuleLoaded(tstate, "inspect")) {{
        patchInspectModule(tstate);
    }}
#endif
}}

void relayPatchModuleOnLoad(PyThreadState *tstate, char const *name) {{
#if PYTHON_VERSION >= 0x350
    if (strcmp(name, "types") == 0) {{
        relayPatchTypesModule(tstate);
        return;
    }}
#endif
    if (strcmp(name, "inspect") == 0) {{
        patchInspectModule(tstate);
    }}
}}
"""

# patchInspectModule()'s block that replaces types.coroutine: moved unchanged into its own function
# (relayPatchTypesModule), run when "types" is loaded; patchInspectModule() calls that function instead.
_TYPES_BLOCK = """\
    module_types = IMPORT_MODULE5(tstate, const_str_plain_types, Py_None, Py_None, const_tuple_empty, const_int_0);

    if (module_types == NULL) {
        PyErr_PrintEx(0);
        Py_Exit(1);
    }
    CHECK_OBJECT(module_types);

    // Patch "types.coroutine" unless it is already patched.
    old_types_coroutine = PyObject_GetAttrString(module_types, "coroutine");
    CHECK_OBJECT(old_types_coroutine);

    if (PyFunction_Check(old_types_coroutine)) {
        PyObject *types_coroutine_replacement = PyCFunction_New(&_method_def_types_coroutine_replacement, NULL);
        CHECK_OBJECT(types_coroutine_replacement);

        PyObject_SetAttrString(module_types, "coroutine", types_coroutine_replacement);
    }
"""

_PATCH_FUNCTION_HEAD = """\
/* Replace inspect functions with ones that handle compiles types too. */
void patchInspectModule(PyThreadState *tstate) {
    static bool is_done = false;
    if (is_done) {
        return;
    }
"""

_PATCH_FUNCTION_TAIL = """\
    is_done = true;
}
#endif

static richcmpfunc original_PyType_tp_richcompare = NULL;
"""

_WRAPPER_USE = """\
    // Use a replacement that also handles compiled coroutine and generator
    // objects, which the original "types.coroutine" will not recognize.
    if (types_coroutine_wrapped != NULL) {
"""

# undoEnvironmentVariable()'s start: the way that needs no `os`, taken while `os` is not loaded.
_ENVIRONMENT_HEAD = """\
void undoEnvironmentVariable(PyThreadState *tstate, char const *variable_name, environment_char_t const *old_value) {
"""

_ENVIRONMENT_WITHOUT_OS = f"""\
#ifndef _WIN32
    // {MARK}: without importing "os" while it is not loaded. posix.environ
    // (bytes to bytes) is the very dict that os.environ wraps once "os" is imported, so setting the
    // C environment and that dict is what os.environ's own assignment does.
    PyObject *relay_modules = PyImport_GetModuleDict();
    PyObject *relay_posix = PyDict_GetItemString(relay_modules, "posix");
    if (PyDict_GetItemString(relay_modules, "os") == NULL && relay_posix != NULL) {{
        PyObject *relay_environ = PyObject_GetAttrString(relay_posix, "environ");
        if (relay_environ != NULL && PyDict_Check(relay_environ)) {{
            PyObject *relay_key = PyBytes_FromString(variable_name);
            CHECK_OBJECT(relay_key);
            if (old_value) {{
                setEnvironmentVariable(variable_name, old_value);
                PyObject *relay_value = PyBytes_FromString(old_value);
                CHECK_OBJECT(relay_value);
                if (unlikely(PyDict_SetItem(relay_environ, relay_key, relay_value) != 0)) {{
                    PyErr_PrintEx(1);
                    Py_Exit(1);
                }}
                Py_DECREF(relay_value);
            }} else {{
                unsetEnvironmentVariable(variable_name);
                if (PyDict_DelItem(relay_environ, relay_key) != 0) {{
                    CLEAR_ERROR_OCCURRED(tstate);
                }}
            }}
            Py_DECREF(relay_key);
            Py_DECREF(relay_environ);
            return;
        }}
        Py_XDECREF(relay_environ);
        CLEAR_ERROR_OCCURRED(tstate);
    }}
#endif
"""

# A compiled package's `__path__`: os.path.dirname(__file__) becomes __file__.rpartition(sep)[0].
_PACKAGE_PATH_WITH_OS = """\
            elements = [
                ExpressionCallNoKeywords(
                    called=makeExpressionAttributeLookup(
                        expression=makeExpressionImportModuleNameHard(
                            module_name="os",
                            import_name="path",
                            module_guaranteed=True,
                            source_ref=source_ref,
                        ),
                        attribute_name="dirname",
                        source_ref=source_ref,
                    ),
                    args=makeExpressionMakeTuple(
                        elements=(file_ref_node,),
                        source_ref=source_ref,
                    ),
                    source_ref=source_ref,
                )
            ]
"""

_PACKAGE_PATH_WITHOUT_OS = f"""\
            # {MARK}: the package's dir without importing os.
            from nuitka.nodes.SubscriptNodes import makeExpressionIndexLookup

            elements = [
                makeExpressionIndexLookup(
                    expression=ExpressionCallNoKeywords(
                        called=makeExpressionAttributeLookup(
                            expression=file_ref_node,
                            attribute_name="rpartition",
                            source_ref=source_ref,
                        ),
                        args=makeExpressionMakeTuple(
                            elements=(makeConstantRefNode(constant=os.path.sep, source_ref=source_ref),),
                            source_ref=source_ref,
                        ),
                        source_ref=source_ref,
                    ),
                    index_value=0,
                    source_ref=source_ref,
                )
            ]
"""

# (path under the nuitka package, sha256 of Nuitka 4.3.3's file, sha256 once patched, [(old, new)]).
# Each old text must occur exactly once.
PATCHES: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "build/include/nuitka/helpers.h",
        "4c50ec37e304472244c9f5e95f4efca4a7a4cd0ed97083cbedad8a0b73d9bbb8",
        "e4d7bafccec778edb01c7ed875cc566b8071ae0b867b925acff0e98049fd979e",
        [
            (
                "extern void patchInspectModule(PyThreadState *tstate);\n",
                "extern void patchInspectModule(PyThreadState *tstate);\n"
                f"// {MARK}: inspect and types are patched when first loaded.\n"
                "extern void relayPatchInspectModuleAtStart(PyThreadState *tstate);\n"
                "extern void relayPatchModuleOnLoad(PyThreadState *tstate, char const *name);\n",
            )
        ],
    ),
    (
        "build/static_src/MainProgram.c",
        "185ec411eaa522818566d5e1bb4a165cf750edc1eba21b60c9edd74b7f98631d",
        "2367cb3531cfc8463845e42a3f24aa49279f6e1a2af615360ddd11eb4192df0c",
        [
            (
                '    NUITKA_PRINT_TRACE("main(): Calling patchInspectModule().");\n    patchInspectModule(tstate);\n',
                f"    // {MARK}: no import of inspect at start.\n"
                '    NUITKA_PRINT_TRACE("main(): Calling relayPatchInspectModuleAtStart().");\n'
                "    relayPatchInspectModuleAtStart(tstate);\n",
            ),
            # The cyclic garbage collector found nothing to free in the objects the start-up's own
            # imports allocate, yet ran ~9 times before relay's entry point could turn it off (3.5 %
            # of a hook's instructions). relay.__main__ turns it off first thing anyway and its
            # long-lived commands turn it back on, so it is off from the interpreter's start.
            (
                "    Nuitka_Py_Initialize();\n",
                "    Nuitka_Py_Initialize();\n"
                f"    // {MARK}: no garbage collection while the program starts.\n"
                "    PyGC_Disable();\n",
            ),
        ],
    ),
    (
        "build/static_src/MetaPathBasedLoader.c",
        "e3e45e49118bb0cda28d1340371432356bf81e4ada7a2588cccd4546ebd671e4",
        "bb31795682d5dbc7fc72eb0fd79f8ae552cbfb1e7e300d2edafbff141b900131",
        [
            (
                "    Nuitka_LoadTriggeredModule(tstate, entry != NULL ? entry->m_post_load : NULL);\n"
                "\n"
                "    Py_XDECREF(parent_name_obj);\n",
                "#if PYTHON_VERSION >= 0x300\n"
                f"    // {MARK}: the module is in sys.modules now.\n"
                "    relayPatchModuleOnLoad(tstate, name);\n"
                "#endif\n"
                "    Nuitka_LoadTriggeredModule(tstate, entry != NULL ? entry->m_post_load : NULL);\n"
                "\n"
                "    Py_XDECREF(parent_name_obj);\n",
            ),
            # Every import looks its name up in the module table, one entry after another, and the
            # stock comparison first copies each entry's name into a buffer (strlen + strcpy) before
            # strcmp: the lookups cost in proportion to everything frozen in, used or not. A plain
            # entry (no name hooks, as all of a standalone program's are) is compared in place, and
            # only when its first character matches (strcmp was still 2.7 % of a hook's instructions).
            # importlib._bootstrap is _frozen_importlib, loaded since the interpreter started; asking
            # for it by that name imported the importlib package and warnings at every start.
            (
                '        importlib = PyImport_ImportModule("importlib._bootstrap");\n',
                f"        // {MARK}: the same module, without importing importlib and warnings.\n"
                '        importlib = PyImport_ImportModule("_frozen_importlib");\n',
            ),
            (
                "    for (int i = 0; i < loader_entry_count; i++) {\n"
                "        if (compareToEntryName(name, loader_entries[i])) {\n",
                "    for (int i = 0; i < loader_entry_count; i++) {\n"
                f"        // {MARK}: no copy of a plain entry's name per comparison.\n"
                "        struct Nuitka_MetaPathBasedLoaderEntry const *candidate = loader_entries[i];\n"
                "        if (candidate->m_compare_name == NULL && candidate->m_get_name == NULL\n"
                "                ? candidate->m_name[0] == name[0] && strcmp(name, candidate->m_name) == 0\n"
                "                : compareToEntryName(name, candidate)) {\n",
            ),
        ],
    ),
    (
        "build/static_src/InspectPatcher.c",
        "f5f2c99001ab4856d9d28035445707f6b259ee487694a3bd6c5dfe42c164ea31",
        "41df509cad245a3acdc94d56f411e9b8731b5548afde65089909126cc990c63c",
        [
            # types.coroutine's replacement needs the wrapper patchInspectModule() makes: make it on demand.
            (
                _WRAPPER_USE,
                f"    // {MARK}: patchInspectModule() makes the wrapper and now runs on the\n"
                "    // first load of inspect; run it now if that has not happened yet.\n"
                "    if (types_coroutine_wrapped == NULL) {\n"
                "        patchInspectModule(PyThreadState_GET());\n"
                "    }\n\n" + _WRAPPER_USE,
            ),
            # The types.coroutine block becomes its own function, run when types is loaded.
            (_TYPES_BLOCK, f"    // {MARK}: also run when types is loaded.\n    relayPatchTypesModule(tstate);\n"),
            (
                _PATCH_FUNCTION_HEAD,
                "#if PYTHON_VERSION >= 0x350\n"
                f"// {MARK}: Nuitka's types.coroutine patching, moved here from\n"
                "// patchInspectModule() unchanged, so that it runs as soon as types is loaded.\n"
                "static void relayPatchTypesModule(PyThreadState *tstate) {\n"
                "    static bool is_done = false;\n"
                "    if (is_done) {\n"
                "        return;\n"
                "    }\n"
                "    is_done = true;\n\n"
                + _TYPES_BLOCK
                + "}\n#endif\n\n"
                + _PATCH_FUNCTION_HEAD
                + f"    // {MARK}: done from here on, the imports below reach this again\n"
                "    // through the loader hook.\n"
                "    is_done = true;\n",
            ),
            (
                _PATCH_FUNCTION_TAIL,
                "    is_done = true;\n}\n" + _DEFERRED_FUNCTIONS + "#endif\n\n"
                "static richcmpfunc original_PyType_tp_richcompare = NULL;\n",
            ),
        ],
    ),
    (
        "tree/ReformulationNamespacePackages.py",
        "3c008203397101ae601d3021c4ab86af37699a805bb6c041d35aaa8193f34fc4",
        "b89583bf92a58d34c0b845682cbc80e6021a60111127a37c97b0212ab007260a",
        [(_PACKAGE_PATH_WITH_OS, _PACKAGE_PATH_WITHOUT_OS)],
    ),
    (
        "build/static_src/HelpersEnvironmentVariables.c",
        "5a19f388b12524e7e194d18320feae05d1a6fae8b61693414219dcaec5587400",
        "1a9628c2952e1451c9e4d233d125c0c9afcf382fafc0c1aa2b028518854ae919",
        [(_ENVIRONMENT_HEAD, _ENVIRONMENT_HEAD + _ENVIRONMENT_WITHOUT_OS)],
    ),
]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _apply(text: str, hunks: list[tuple[str, str]], path: str) -> str:
    """Replace each old text, which must occur exactly once."""
    for old, new in hunks:
        count = text.count(old)
        if count != 1:
            raise SystemExit(f"patch_nuitka: {path}: expected text found {count} times, not once")
        text = text.replace(old, new)
    return text


def main() -> int:
    spec = importlib.util.find_spec("nuitka")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"patch_nuitka: nuitka is not installed for {sys.executable}")
    root = next(iter(spec.submodule_search_locations))
    # Check everything before writing anything, so a foreign Nuitka is left untouched.
    todo: list[tuple[str, bytes]] = []
    for rel, original_sum, patched_sum, hunks in PATCHES:
        path = os.path.join(root, rel)
        with open(path, "rb") as f:
            data = f.read()
        have = _sha256(data)
        if have == patched_sum:
            continue
        if have != original_sum:
            raise SystemExit(
                f"patch_nuitka: {path} is not the Nuitka 4.3.3 file this patch was written for "
                f"(sha256 {have}): re-check build/patch_nuitka.py against the new Nuitka, or pin nuitka==4.3.3 "
                "in build/requirements.txt"
            )
        new = _apply(data.decode(), hunks, rel).encode()
        if _sha256(new) != patched_sum:
            raise SystemExit(f"patch_nuitka: {rel}: patched text has sha256 {_sha256(new)}, expected {patched_sum}")
        todo.append((path, new))
    for path, new in todo:
        tmp = path + ".relay-tmp"
        with open(tmp, "wb") as f:
            f.write(new)
        os.replace(tmp, path)
        print(f"patch_nuitka: patched {os.path.relpath(path, root)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
