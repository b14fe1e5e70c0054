//! The loaded modules (executable, shared libraries), as the trace records them:
//! path, load bias, build-id and PT_LOAD segments, read from the loader's own
//! list with `dl_iterate_phdr`.
//!
//! Calls the loader, which takes its lock: never call this while holding any
//! lock of ours (a thread inside `dlopen` holds the loader lock and may be
//! waiting on us). Allocates: callers hold the Guard.

use core::ffi::{c_int, c_void, CStr};
use leakhunt_format::{Module, Segment};

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const NT_GNU_BUILD_ID: u32 = 3;

pub fn scan() -> Vec<Module> {
    let mut out: Vec<Module> = Vec::new();
    // SAFETY: the callback only reads the structures the loader passes it.
    unsafe { libc::dl_iterate_phdr(Some(callback), (&mut out as *mut Vec<Module>).cast()) };
    out
}

fn exe_path() -> String {
    std::fs::read_link("/proc/self/exe")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

unsafe extern "C" fn callback(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: data is the &mut Vec<Module> passed to dl_iterate_phdr above; info is valid for this call.
    let out = &mut *(data as *mut Vec<Module>);
    let info = &*info;
    let name = if info.dlpi_name.is_null() {
        String::new()
    } else {
        CStr::from_ptr(info.dlpi_name)
            .to_string_lossy()
            .into_owned()
    };
    // The first entry, with an empty name, is the main program.
    let path = if name.is_empty() && out.is_empty() {
        exe_path()
    } else {
        name
    };
    let phdrs = if info.dlpi_phdr.is_null() {
        &[][..]
    } else {
        core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize)
    };
    let base = info.dlpi_addr;
    let mut segments = Vec::new();
    let mut build_id = Vec::new();
    for ph in phdrs {
        if ph.p_type == PT_LOAD {
            segments.push(Segment {
                vaddr: ph.p_vaddr,
                memsz: ph.p_memsz,
                flags: ph.p_flags,
                file_offset: ph.p_offset,
            });
        } else if ph.p_type == PT_NOTE && build_id.is_empty() {
            let notes =
                core::slice::from_raw_parts((base + ph.p_vaddr) as *const u8, ph.p_memsz as usize);
            build_id = find_build_id(notes, ph.p_align).unwrap_or_default();
        }
    }
    if !segments.is_empty() {
        out.push(Module {
            id: 0,
            base,
            path,
            build_id,
            segments,
        });
    }
    0
}

fn find_build_id(mut notes: &[u8], align: u64) -> Option<Vec<u8>> {
    let align = if align == 8 { 8 } else { 4 };
    let rd = |b: &[u8], o: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?))
    };
    while notes.len() >= 12 {
        let namesz = rd(notes, 0)? as usize;
        let descsz = rd(notes, 4)? as usize;
        let ty = rd(notes, 8)?;
        let name_end = 12usize.checked_add(namesz)?;
        let desc_start = name_end.next_multiple_of(align);
        let desc_end = desc_start.checked_add(descsz)?;
        let name = notes.get(12..name_end)?;
        let desc = notes.get(desc_start..desc_end)?;
        if ty == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(desc.to_vec());
        }
        notes = notes.get(desc_end.next_multiple_of(align)..)?;
    }
    None
}
