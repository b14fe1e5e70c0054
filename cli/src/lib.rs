//! The leakhunt CLI as a library: replay a trace into a model once, then
//! report, draw or export it. `main.rs` only parses arguments and maps errors
//! to exit codes.

pub mod addrmap;
pub mod axis;
pub mod color;
pub mod curve;
pub mod diff;
pub mod export;
pub mod files;
pub mod flamegraph;
pub mod html;
pub mod inferno_svg;
pub mod leaks;
pub mod model;
pub mod processes;
pub mod progress;
pub mod python;
pub mod report;
pub mod run;
pub mod shown;
pub mod source;
pub mod stacks;
pub mod suppress;
pub mod symbolize;
pub mod timeline;
