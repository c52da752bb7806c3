//! candle's CPU thread count, fixed once for the process.
#![allow(dead_code)]

/// Sets `RAYON_NUM_THREADS`, when it is unset, to the number of threads candle chooses by itself
/// (`candle::utils::get_num_threads`: the physical cores). candle 0.11 asks for that number at
/// every matrix product on the CPU and, without the variable, reads `/proc/cpuinfo` each time:
/// in the README's MIL example, whose products are small, ~28,000 reads and ~6 s of system time.
/// rayon's own pool then has as many threads. Call it first in `main`, before threads start.
pub fn pin_candle_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = haidef_wsi::encoders::candle::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}
