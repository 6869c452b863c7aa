//! The client-facing APIs a model can serve: what `[models.ID] apis` lists, and what the
//! router, the provider clients and the mock upstream dispatch on.

use serde::Deserialize;

use crate::providers::sse::Dialect;

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
    /// `POST /v1/responses` (the Responses API: typed events when streamed)
    Responses,
}

impl Api {
    pub const ALL: [Api; 4] = [
        Self::Chat,
        Self::Completions,
        Self::Embeddings,
        Self::Responses,
    ];

    /// The path after an OpenAI-compatible `base_url`.
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "chat/completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Responses => "responses",
        }
    }

    /// The OpenTelemetry GenAI operation name (`gen_ai.operation.name`).
    pub fn operation(self) -> &'static str {
        match self {
            Self::Chat | Self::Responses => "chat",
            Self::Completions => "text_completion",
            Self::Embeddings => "embeddings",
        }
    }

    /// The `api` label of the request-level metrics: the name `[models.ID] apis` uses. A fixed
    /// set, so the label's cardinality is bounded by construction.
    pub fn label(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Responses => "responses",
        }
    }

    /// Position in [`Self::ALL`], for tables indexed by API.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Every `api` label value, in [`Self::ALL`]'s order (docs and tests).
    pub fn labels() -> [&'static str; Self::ALL.len()] {
        Self::ALL.map(Self::label)
    }

    /// How this API's streams are written.
    pub fn dialect(self) -> Dialect {
        match self {
            Self::Chat | Self::Completions | Self::Embeddings => Dialect::OpenAi,
            Self::Responses => Dialect::Responses,
        }
    }

    /// Whether answers of this API can stream.
    pub fn streams(self) -> bool {
        !matches!(self, Self::Embeddings)
    }

    /// Whether this API's streams always carry usage (the Responses API's
    /// `response.completed` does). Then the router neither asks for usage with
    /// `stream_options.include_usage` (the Responses API has no such option) nor cuts the
    /// usage out: the client gets the stream exactly as the upstream wrote it.
    pub fn reports_stream_usage(self) -> bool {
        matches!(self, Self::Responses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_config_names() {
        for api in Api::ALL {
            let parsed: Api = serde_json::from_value(serde_json::json!(api.label())).unwrap();
            assert_eq!(parsed, api);
            assert_eq!(Api::ALL[api.index()], api);
        }
    }
}
