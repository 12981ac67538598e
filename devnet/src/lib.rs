//! A local Session network (devnet).
