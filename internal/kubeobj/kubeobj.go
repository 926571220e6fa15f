// Package kubeobj turns multi-document YAML into objects and creates them
// through the dynamic client, as `kubectl create -f` does.
package kubeobj

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

// Decode reads every non-empty document of data.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, fmt.Errorf("decode document %d: %w", len(out)+1, err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

// Create creates obj as mapping says: in its namespace ("default" when it
// names none) when the resource is namespaced.
func Create(ctx context.Context, dyn dynamic.Interface, mapping *meta.RESTMapping, obj *unstructured.Unstructured, fieldManager string) error {
	var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		ri = dyn.Resource(mapping.Resource).Namespace(ns)
	}
	_, err := ri.Create(ctx, obj, metav1.CreateOptions{FieldManager: fieldManager})
	return err
}
