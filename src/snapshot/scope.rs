//! What a snapshot covers: the parts of a Kubeflow cluster, and their names in the scope tag.

/// The parts of a Kubeflow cluster that a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    Databases,
    Buckets,
    Kubernetes,
}

impl Component {
    /// The part's name in a snapshot's scope tag (`kfguard-scope=buckets+databases`).
    pub fn part(self) -> &'static str {
        match self {
            Component::Databases => "databases",
            Component::Buckets => "buckets",
            Component::Kubernetes => "kubernetes",
        }
    }
}
