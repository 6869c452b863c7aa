//! Provider and model ids: positions in the catalogue, typed so that one cannot be used for
//! the other. Made only by the catalogue (and tests); every table indexed by them has one
//! entry per configured provider or model.

/// A configured provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderId(u32);

/// A configured model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId(u32);

macro_rules! id {
    ($id:ident) => {
        impl $id {
            /// The id at this position of the catalogue.
            pub fn from_index(index: usize) -> Self {
                Self(u32::try_from(index).unwrap_or(u32::MAX))
            }

            /// Its position: the index into every table of this kind.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id!(ProviderId);
id!(ModelId);
