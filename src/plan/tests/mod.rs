use super::fixtures::*;
use super::*;

mod inputs;
mod outside_weir;
mod safety;
mod states;
