"""What the replay and the distributed executors share: the op bodies of the stages a process
owns (`StageWorker`), a datum's state in the pipeline (`Flight`), the messages between stage
owners and the in-process transport. See docs/executor.md §Executors."""
