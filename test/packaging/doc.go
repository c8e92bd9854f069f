// Package packaging tests the Helm chart, the deploy/ manifests and the
// Dockerfile: the chart is rendered with the Helm SDK and decoded into
// k8s.io/api types, and the tests assert on their fields. It is a module of
// its own so that the Helm SDK stays out of the driver's go.mod.
package packaging
