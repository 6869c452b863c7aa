//! The client-facing APIs a model can serve: what `[models.ID] apis` lists, and what the
//! router, the provider clients and the mock upstream dispatch on.

use serde::Deserialize;

/// One OpenAI API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/completions` (legacy text completions)
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
}

impl Api {
    pub const ALL: [Api; 3] = [Self::Chat, Self::Completions, Self::Embeddings];

    /// The path after an OpenAI-compatible `base_url`.
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "chat/completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }

    /// The OpenTelemetry GenAI operation name (`gen_ai.operation.name`).
    pub fn operation(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completions => "text_completion",
            Self::Embeddings => "embeddings",
        }
    }

    /// Position in [`Self::ALL`], for tables indexed by API.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether answers of this API can stream.
    pub fn streams(self) -> bool {
        !matches!(self, Self::Embeddings)
    }
}
