// Stand-in for pulumi-resource-docker: the upstream Terraform provider through the bridge
// (served by serveMuxed, ../bridge/serve.go).
package main

import (
	"context"

	"github.com/terraform-providers/terraform-provider-docker/internal/provider"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
)

var version = "0.0.1" // set with -ldflags to the npm package's version

func main() {
	ctx := context.Background()
	serveMuxed(ctx, "docker", version, tfbridge.ProviderInfo{
		P: pf.MuxShimWithPF(ctx, shimv2.NewProvider(provider.New(version)()), provider.NewFrameworkProvider(version)()),
		Config: map[string]*tfbridge.SchemaInfo{ // here and below: where @pulumi/docker differs from the bridge defaults
			"host":          {Default: &tfbridge.DefaultInfo{EnvVars: []string{"DOCKER_HOST"}, Value: "unix:///var/run/docker.sock"}},
			"registry_auth": {Name: "registryAuth", MaxItemsOne: tfbridge.False()},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_config": {Tok: "docker:index/serviceConfig:ServiceConfig"},
			"docker_container": {
				Tok:                 "docker:index/container:Container",
				DeleteBeforeReplace: true,
				Fields: map[string]*tfbridge.SchemaInfo{
					"command":           {Name: "command"},
					"networks_advanced": {Name: "networksAdvanced"},
				},
			},
			"docker_image": {Tok: "docker:index/remoteImage:RemoteImage", Fields: map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}}},
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"docker_image": {Tok: "docker:index/getRemoteImage:getRemoteImage"},
		},
	})
}
