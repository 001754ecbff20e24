"""The tests' harness, a library the conftests and tests import (conftests only declare fixtures):
names and cleanup scoped to one test (`scoped`), child processes on top of
`harclip.services.child.Child` (`processes`), Kafka reading (`kafka`), and the helpers of each
area's tests (`worker`, `api`, `events`, `es`, `ui`, `training`, `chaos`)."""
