// kstatus prints how Flux (and kstatus-based tools) read the health of Kubernetes objects:
// for each object given as JSON or YAML on stdin (one object, a List, or ---separated
// documents), one JSON line {"kind","name","status","message"} computed by
// sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute, the library Flux's health checks use.
//
// `kstatus validate` instead decodes each Flux HelmRelease strictly into helm-controller's own
// API type (unknown or mistyped fields fail) and prints {"kind","name","status":"Valid"|"Invalid",
// "message"}: no CRD YAML of helm-controller is published as a Go module, its types are.
// Built by hack/build-tools.sh; used by tests/unit/test_gitops.py and tests/e2e/test_gitops_health.py.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// validate decodes a Flux HelmRelease strictly into the upstream type.
func validate(u *unstructured.Unstructured, raw []byte) result {
	r := result{Kind: u.GetKind(), Name: u.GetName(), Status: "Valid"}
	if u.GetAPIVersion() != helmv2.GroupVersion.String() || u.GetKind() != "HelmRelease" {
		r.Status, r.Message = "Invalid", "not a "+helmv2.GroupVersion.String()+" HelmRelease"
		return r
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var hr helmv2.HelmRelease
	if err := dec.Decode(&hr); err != nil {
		r.Status, r.Message = "Invalid", err.Error()
	} else if hr.Spec.Chart == nil && hr.Spec.ChartRef == nil {
		r.Status, r.Message = "Invalid", "spec.chart or spec.chartRef is required"
	} else if hr.Spec.Chart != nil && (hr.Spec.Chart.Spec.Chart == "" || hr.Spec.Chart.Spec.SourceRef.Name == "") {
		r.Status, r.Message = "Invalid", "spec.chart.spec.chart and spec.chart.spec.sourceRef.name are required"
	}
	return r
}

func main() {
	validating := len(os.Args) > 1 && os.Args[1] == "validate"
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(os.Stdin), 4096)
	out := json.NewEncoder(os.Stdout)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			fmt.Fprintln(os.Stderr, "kstatus: decode:", err)
			os.Exit(2)
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		// UnmarshalJSON keeps integers int64, as the API machinery (and kstatus) expect.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: object:", err)
			os.Exit(2)
		}
		if validating {
			_ = out.Encode(validate(u, raw))
			continue
		}
		items := []unstructured.Unstructured{*u}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				fmt.Fprintln(os.Stderr, "kstatus: list:", err)
				os.Exit(2)
			}
			items = list.Items
		}
		for i := range items {
			res, err := status.Compute(&items[i])
			if err != nil {
				fmt.Fprintln(os.Stderr, "kstatus: compute:", err)
				os.Exit(1)
			}
			_ = out.Encode(result{items[i].GetKind(), items[i].GetName(), string(res.Status), res.Message})
		}
	}
}
