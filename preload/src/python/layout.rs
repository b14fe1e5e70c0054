//! Where each CPython version keeps what the frame reader needs: byte offsets
//! into its private structures, as data (one table per version, like
//! py-spy's `python_bindings/`), so a version is added without new code.
//!
//! Every offset here was read off the version's headers (and, for 3.11, off
//! the DWARF of a real build with gdb's `ptype /o`); nothing is guessed at
//! run time. A version without a table is not read at all: its stacks stay
//! native and the recorder says so once.

/// How a thread's innermost interpreter frame is found from its thread state.
#[derive(Clone, Copy, Debug)]
pub enum FrameLink {
    /// 3.11, 3.12: `tstate->cframe->current_frame`.
    ViaCFrame {
        tstate_cframe: usize,
        current_frame: usize,
    },
    /// 3.13+: `tstate->current_frame`.
    Direct { tstate_current_frame: usize },
}

/// Where one C-level activation of the eval loop ends in the frame chain.
#[derive(Clone, Copy, Debug)]
pub enum Entry {
    /// 3.11: a `bool is_entry` in the frame that the activation started with.
    Flag { offset: usize },
    /// 3.12+: the activation starts above a shim frame that the C stack
    /// owns (`owner == cstack`); such frames are not Python code.
    ///
    /// `cstack` is the owner value `_PyEval_EvalFrameDefault` gives its entry
    /// frame: 3 on every version so far, though the name moved (3.12/3.13
    /// `FRAME_OWNED_BY_CSTACK = 3`; 3.14 inserted `FRAME_OWNED_BY_INTERPRETER
    /// = 3` for it and pushed `FRAME_OWNED_BY_CSTACK` to 4). 3.14 treats every
    /// `owner >= 3` as not Python (`_PyFrame_IsIncomplete`), but a 3.14
    /// default build does not appear to assign 4 (see `V3_14`), so one value
    /// finds every entry frame; `owner >= cstack` would mean the same on 3.12 and 3.13 too,
    /// where 3 is the largest owner value.
    Owner { offset: usize, cstack: u8 },
}

/// The format of `co_linetable` (how the CLI turns offsets into lines).
pub const LINETABLE_LOCATIONS: u8 = 3;

#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub major: u8,
    pub minor: u8,
    /// `_PyRuntimeState`: the `Py_tss_t` whose key holds each thread's own
    /// state (`_is_initialized` at +0, the `pthread_key_t` at +4).
    pub runtime_tss: usize,
    /// `_PyRuntimeState._finalizing`: the thread state finalizing the
    /// runtime, non-null once `Py_Finalize` has begun; other threads' states
    /// may already be freed then.
    pub runtime_finalizing: usize,
    pub frame_link: FrameLink,
    /// `_PyInterpreterFrame`: the code object (`f_code` / `f_executable`),
    /// the caller, the current instruction (3.11/3.12 `prev_instr`, the unit
    /// before the next instruction, maybe an inline cache entry; 3.13+
    /// `instr_ptr`, the instruction executing; either way CPython's own
    /// `_PyInterpreterFrame_LASTI` is `(that - co_code_adaptive) / 2` and the
    /// location table gives cache units their instruction's line).
    pub frame_code: usize,
    pub frame_previous: usize,
    pub frame_instr: usize,
    /// Bits to clear from the code pointer (3.14's tagged `_PyStackRef`).
    pub code_tag_mask: u64,
    pub entry: Entry,
    /// `PyCodeObject` fields.
    pub code_filename: usize,
    pub code_qualname: usize,
    pub code_firstlineno: usize,
    pub code_linetable: usize,
    /// `co_code_adaptive`: the first code unit (2 bytes each).
    pub code_adaptive: usize,
    pub linetable_format: u8,
    /// `PyASCIIObject` / `PyCompactUnicodeObject`: header sizes (where the
    /// characters of a compact string start), `length` and `state`.
    ///
    /// `state` is a bitfield whose low bits are, on 3.11 through 3.14 default
    /// builds alike, `interned` bits 0-1, `kind` bits 2-4, `compact` bit 5,
    /// `ascii` bit 6 (bit 7: 3.11 `ready`, 3.12+ `statically_allocated`);
    /// checked by setting each field of a real `PyASCIIObject` and reading
    /// the word back (3.11.7, 3.12.1, 3.13.0, 3.14.10). The free-threaded
    /// 3.14 build makes `interned` a whole byte, which moves the rest up by
    /// 8 bits; no table here is for that build.
    pub unicode_ascii_size: usize,
    pub unicode_compact_size: usize,
    pub unicode_length: usize,
    pub unicode_state: usize,
    /// `PyBytesObject`: `ob_size` and `ob_sval`.
    pub bytes_size: usize,
    pub bytes_data: usize,
}

/// CPython 3.11 (checked on 3.11.2 and 3.11.7, x86_64).
pub const V3_11: Layout = Layout {
    major: 3,
    minor: 11,
    runtime_tss: 592,
    runtime_finalizing: 24,
    frame_link: FrameLink::ViaCFrame {
        tstate_cframe: 56,
        current_frame: 8,
    },
    frame_code: 32,
    frame_previous: 48,
    frame_instr: 56,
    code_tag_mask: 0,
    entry: Entry::Flag { offset: 68 },
    code_filename: 112,
    code_qualname: 128,
    code_firstlineno: 72,
    code_linetable: 136,
    code_adaptive: 184,
    linetable_format: LINETABLE_LOCATIONS,
    unicode_ascii_size: 48,
    unicode_compact_size: 72,
    unicode_length: 16,
    unicode_state: 32,
    bytes_size: 16,
    bytes_data: 32,
};

/// CPython 3.12 (x86_64, default build), from v3.12.0's and 3.12.1's
/// headers: the numbers are `offsetof`/`sizeof` printed by a C file compiled
/// against 3.12.1's installed `Include/` and `Include/internal/` (with
/// `Py_BUILD_CORE`, release config: no `Py_DEBUG`, `Py_STATS`,
/// `Py_TRACE_REFS`), and agree field for field with py-spy's bindgen output
/// for v3.12.0 (`src/python_bindings/v3_12_0.rs`). Also walked live: in a
/// 3.12.1 process, key -> `pthread_getspecific` gave `PyThreadState_Get()`,
/// and the chain gave the same code objects and `f_lasti` as
/// `sys._getframe()`, with a shim between a `sorted(key=)` callback and its
/// caller, in the main thread and another.
///
/// What moved from 3.11: `autoTSSkey` left `gilstate` for `_PyRuntimeState`
/// itself; `_PyCFrame` lost `use_tracing` (so `current_frame` is at 0);
/// `f_code` moved to the front of the frame; `is_entry` became `owner`
/// (entry frames are `FRAME_OWNED_BY_CSTACK` shims whose `f_code` is the
/// interpreter's trampoline code object); `co_firstlineno` is 4 bytes
/// earlier (3.11's `short co_warmup, _co_linearray_entry_size` went);
/// `PyASCIIObject` lost `wstr` (and the compact header `wstr_length`), so
/// the two headers are 8 and 16 bytes shorter.
pub const V3_12: Layout = Layout {
    major: 3,
    minor: 12,
    runtime_tss: 1544,
    // `_Py_atomic_address _finalizing` after five ints (20 bytes, aligned).
    runtime_finalizing: 24,
    frame_link: FrameLink::ViaCFrame {
        tstate_cframe: 56,
        current_frame: 0,
    },
    frame_code: 0,
    frame_previous: 8,
    frame_instr: 56,
    code_tag_mask: 0,
    // `char owner` after `int stacktop` (64) and `uint16_t return_offset` (68).
    entry: Entry::Owner {
        offset: 70,
        cstack: 3,
    },
    code_filename: 112,
    code_qualname: 128,
    code_firstlineno: 68,
    code_linetable: 136,
    code_adaptive: 192,
    linetable_format: LINETABLE_LOCATIONS,
    unicode_ascii_size: 40,
    unicode_compact_size: 56,
    unicode_length: 16,
    unicode_state: 32,
    bytes_size: 16,
    bytes_data: 32,
};

/// CPython 3.13 (x86_64, default build, not free-threaded), from v3.13.0's
/// headers: `offsetof`/`sizeof` compiled against 3.13.0's installed headers
/// and again against 3.13.18's (every number below the same; only
/// `sizeof(_PyRuntimeState)`, past `autoTSSkey`, differs), agreeing with
/// py-spy's v3.13.0 bindings, and walked live in a 3.13.0 process as for
/// 3.12.
///
/// `_PyRuntimeState` now begins with `_Py_DebugOffsets debug_offsets`
/// (584 bytes), which is why everything after it moved up. The `_PyCFrame`
/// is gone (`tstate->current_frame`); `f_code` became `PyObject
/// *f_executable` (a code object, or `None` in the entry shim), untagged;
/// `prev_instr` became `instr_ptr`; the shim is still `owner ==
/// FRAME_OWNED_BY_CSTACK == 3`.
///
/// At run time these can be confirmed from `_PyRuntime.debug_offsets` (the
/// struct at `_PyRuntime + 0`, all fields `uint64_t`, positions from 3.13's
/// `pycore_runtime.h`): `cookie` @0 == "xdebugpy", `version` @8 with
/// `version >> 16 == 0x030d` (the rest is the patch level), `free_threaded`
/// @16 == 0; then `runtime_state.finalizing` @32 (608),
/// `thread_state.current_frame` @184 (72), `interpreter_frame.previous` @232
/// (8), `.executable` @240 (0), `.instr_ptr` @248 (56), `.owner` @264 (70),
/// `code_object.filename` @280 (112), `.qualname` @296 (128), `.linetable`
/// @304 (136), `.firstlineno` @312 (68), `.co_code_adaptive` @344 (200),
/// `bytes_object.ob_size` @520 (16), `.ob_sval` @528 (32),
/// `unicode_object.state` @544 (32), `.length` @552 (16),
/// `.asciiobject_size` @560 (40). Not covered there: `autoTSSkey`, the
/// compact header size, the owner value of the shim.
pub const V3_13: Layout = Layout {
    major: 3,
    minor: 13,
    runtime_tss: 2160,
    // 584 (`_Py_DebugOffsets`) + five ints, aligned: 608.
    runtime_finalizing: 608,
    frame_link: FrameLink::Direct {
        tstate_current_frame: 72,
    },
    frame_code: 0,
    frame_previous: 8,
    frame_instr: 56,
    code_tag_mask: 0,
    entry: Entry::Owner {
        offset: 70,
        cstack: 3,
    },
    code_filename: 112,
    code_qualname: 128,
    code_firstlineno: 68,
    code_linetable: 136,
    code_adaptive: 200,
    linetable_format: LINETABLE_LOCATIONS,
    unicode_ascii_size: 40,
    unicode_compact_size: 56,
    unicode_length: 16,
    unicode_state: 32,
    bytes_size: 16,
    bytes_data: 32,
};

/// CPython 3.14 (x86_64, default build, not free-threaded), from v3.14.0:
/// py-spy's v3.14.0 bindings give every number here, and `offsetof`/`sizeof`
/// compiled against 3.14.10's headers (Debian's libpython3.14-dev,
/// release config) give the same; not walked live (no 3.14 interpreter ran
/// here).
///
/// `_Py_DebugOffsets` grew to 760 bytes, moving `_finalizing` and
/// `autoTSSkey`. The frame gained `_PyStackRef *stackpointer` at 64, so
/// `owner` moved to 74. `f_executable` is a `_PyStackRef`: a `PyObject *`
/// whose low bits are a tag (`Py_TAG_BITS == 3` in the default build,
/// `pycore_stackref.h`: bit 0 `Py_TAG_REFCNT` marks a deferred/immortal
/// reference, 3 a tagged int, which a code slot never holds), hence
/// `code_tag_mask: 3`; objects are at least 8-byte aligned, so clearing both
/// bits never loses address bits. The eval loop's entry frame is now
/// `FRAME_OWNED_BY_INTERPRETER == 3` with `f_executable == None` (tagged);
/// `FRAME_OWNED_BY_CSTACK` is 4 and looks unused: in Debian's 3.14.10
/// libpython3.14.a the entry frames' stores are `owner = 3` (two, both in
/// ceval.o) and no store of 4 to an `owner` showed up (pystack skips
/// both 3 and 4 as shims, to be safe). So `cstack: 3` still marks every
/// activation's start (see `Entry::Owner`).
///
/// Run-time confirmation, from `_PyRuntime.debug_offsets` (positions from
/// 3.14.10's `pycore_debug_offsets.h`, whose size, 760, is 3.14.0's too;
/// all `uint64_t`): `cookie` @0 ==
/// "xdebugpy", `version` @8 with `version >> 16 == 0x030e`, `free_threaded`
/// @16 == 0; `runtime_state.finalizing` @32 (784),
/// `thread_state.current_frame` @208 (72), `interpreter_frame.previous` @256
/// (8), `.executable` @264 (0), `.instr_ptr` @272 (56), `.owner` @288 (74),
/// `code_object.filename` @320 (112), `.qualname` @336 (128), `.linetable`
/// @344 (136), `.firstlineno` @352 (68), `.co_code_adaptive` @384 (208),
/// `bytes_object.ob_size` @600 (16), `.ob_sval` @608 (32),
/// `unicode_object.state` @624 (32), `.length` @632 (16),
/// `.asciiobject_size` @640 (40). As in 3.13, `autoTSSkey`, the compact
/// header size, the tag mask and the shim's owner value are not there.
pub const V3_14: Layout = Layout {
    major: 3,
    minor: 14,
    runtime_tss: 2336,
    // 760 (`_Py_DebugOffsets`) + five ints, aligned: 784.
    runtime_finalizing: 784,
    frame_link: FrameLink::Direct {
        tstate_current_frame: 72,
    },
    frame_code: 0,
    frame_previous: 8,
    frame_instr: 56,
    code_tag_mask: 3,
    // After `stackpointer` (64) and `uint16_t return_offset` (72).
    entry: Entry::Owner {
        offset: 74,
        cstack: 3,
    },
    code_filename: 112,
    code_qualname: 128,
    code_firstlineno: 68,
    code_linetable: 136,
    code_adaptive: 208,
    linetable_format: LINETABLE_LOCATIONS,
    unicode_ascii_size: 40,
    unicode_compact_size: 56,
    unicode_length: 16,
    unicode_state: 32,
    bytes_size: 16,
    bytes_data: 32,
};

/// The table for a `Py_Version` (`0xMMmmpp..`), if we have one. Keyed by
/// minor version alone: within 3.13 (3.13.0 against 3.13.18) and 3.14
/// (3.14.0 against 3.14.10) none of these numbers moved.
pub fn for_version(major: u8, minor: u8) -> Option<&'static Layout> {
    [&V3_11, &V3_12, &V3_13, &V3_14]
        .into_iter()
        .find(|l| l.major == major && l.minor == minor)
}
