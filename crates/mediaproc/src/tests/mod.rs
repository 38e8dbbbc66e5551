//! The crate's tests that cross modules: whole uploads through [`crate::process`], with inputs
//! made in code (and by ffmpeg for video and audio).

mod av;
pub(crate) mod fixtures;
mod images;
mod sniffing;
mod timing;
