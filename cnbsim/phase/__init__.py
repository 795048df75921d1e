"""The lifecycle's phases, named as buildpacks/lifecycle names them: detect, resolve (the build plan),
restore, build, export, launch."""
