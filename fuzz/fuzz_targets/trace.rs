//! Any bytes as a trace: the decoder and the replay must neither panic nor
//! allocate more than a chunk's bound (see cli/tests/fuzz_decode.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for summary in [false, true] {
        let Ok(mut reader) = leakhunt_format::TraceReader::new(data) else {
            return;
        };
        if summary {
            reader.skip_event_chunks();
        }
        let Ok(model) = leakhunt_cli::model::Model::replay(reader) else {
            return;
        };
        for block in model.live.values() {
            let _ = model.stack_ips(block.stack);
        }
        let _ = leakhunt_cli::timeline::verdict(&model.timeline, model.duration_us);
        let _ = leakhunt_cli::timeline::growth(&model.timeline, model.duration_us);
    }
});
