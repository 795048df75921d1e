"""cnbsim: the Cloud Native Buildpacks lifecycle, offline."""
