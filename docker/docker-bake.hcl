# Build matrix of the ComfyUI-Docker images. Run from the repository root (the build context):
#
#   docker buildx bake -f docker/docker-bake.hcl all                 # 4 variants x 3 CUDA versions
#   docker buildx bake -f docker/docker-bake.hcl standard            # standard for every CUDA version
#   docker buildx bake -f docker/docker-bake.hcl standard-cu128      # one image
#   REGISTRY=ghcr.io/me docker buildx bake -f docker/docker-bake.hcl --push all
#
# Tags: ${REGISTRY}/comfyui:<variant>-cu<ver>, and ${REGISTRY}/comfyui:<variant> for DEFAULT_CUDA.

variable "REGISTRY" {
  default = "docker.io/comfyuidocker"
}

variable "VERSION" {
  default = "0.1.0"
}

variable "REVISION" {
  default = "unknown"
}

variable "CREATED" {
  default = "unknown"
}

# ComfyUI release (a git tag of Comfy-Org/ComfyUI).
variable "COMFYUI_VERSION" {
  default = "v0.33.0"
}

# The CUDA version whose images also get the plain :<variant> tag.
variable "DEFAULT_CUDA" {
  default = "12.8"
}

# One entry per CUDA version: the PyTorch wheel index with the torch, torchvision and torchaudio
# versions published on it. The CUDA libraries come with the torch wheels (the nvidia-* packages),
# so every CUDA version builds on the same Debian base (the Dockerfile's BASE_IMAGE).
variable "CUDA" {
  default = [
    {
      version     = "12.6"
      tag         = "cu126"
      torch_index = "https://download.pytorch.org/whl/cu126"
      torch       = "2.9.1"
      torchvision = "0.24.1"
      torchaudio  = "2.9.1"
    },
    {
      version     = "12.8"
      tag         = "cu128"
      torch_index = "https://download.pytorch.org/whl/cu128"
      torch       = "2.9.1"
      torchvision = "0.24.1"
      torchaudio  = "2.9.1"
    },
    {
      version     = "13.0"
      tag         = "cu130"
      torch_index = "https://download.pytorch.org/whl/cu130"
      torch       = "2.9.1"
      torchvision = "0.24.1"
      torchaudio  = "2.9.1"
    },
  ]
}

function "tags" {
  params = [variant, cuda]
  result = concat(
    ["${REGISTRY}/comfyui:${variant}-${cuda.tag}"],
    cuda.version == DEFAULT_CUDA ? ["${REGISTRY}/comfyui:${variant}"] : [],
  )
}

group "default" {
  targets = ["standard"]
}

group "all" {
  targets = ["minimal", "standard", "full", "dev"]
}

target "_common" {
  context    = "."
  dockerfile = "docker/Dockerfile"
  platforms  = ["linux/amd64"]
  args = {
    COMFYUI_VERSION = COMFYUI_VERSION
  }
  # Release labels are set on the finished image, so a new revision or date never busts the
  # build cache (build args used before RUN steps would).
  labels = {
    "org.opencontainers.image.version"  = VERSION
    "org.opencontainers.image.revision" = REVISION
    "org.opencontainers.image.created"  = CREATED
  }
}

target "minimal" {
  name     = "minimal-${cuda.tag}"
  matrix   = { cuda = CUDA }
  inherits = ["_common"]
  target   = "runtime"
  args = {
    VARIANT             = "minimal"
    CUDA_VERSION        = cuda.version
    TORCH_INDEX         = cuda.torch_index
    TORCH_VERSION       = cuda.torch
    TORCHVISION_VERSION = cuda.torchvision
    TORCHAUDIO_VERSION  = cuda.torchaudio
  }
  tags = tags("minimal", cuda)
}

target "standard" {
  name     = "standard-${cuda.tag}"
  matrix   = { cuda = CUDA }
  inherits = ["_common"]
  target   = "runtime"
  args = {
    VARIANT             = "standard"
    CUDA_VERSION        = cuda.version
    TORCH_INDEX         = cuda.torch_index
    TORCH_VERSION       = cuda.torch
    TORCHVISION_VERSION = cuda.torchvision
    TORCHAUDIO_VERSION  = cuda.torchaudio
  }
  tags = tags("standard", cuda)
}

target "full" {
  name     = "full-${cuda.tag}"
  matrix   = { cuda = CUDA }
  inherits = ["_common"]
  target   = "runtime"
  args = {
    VARIANT             = "full"
    CUDA_VERSION        = cuda.version
    TORCH_INDEX         = cuda.torch_index
    TORCH_VERSION       = cuda.torch
    TORCHVISION_VERSION = cuda.torchvision
    TORCHAUDIO_VERSION  = cuda.torchaudio
  }
  tags = tags("full", cuda)
}

target "dev" {
  name     = "dev-${cuda.tag}"
  matrix   = { cuda = CUDA }
  inherits = ["_common"]
  target   = "dev"
  # dev is full plus tools: the same build args, so it reuses full's layers (and its venv).
  args = {
    VARIANT             = "full"
    CUDA_VERSION        = cuda.version
    TORCH_INDEX         = cuda.torch_index
    TORCH_VERSION       = cuda.torch
    TORCHVISION_VERSION = cuda.torchvision
    TORCHAUDIO_VERSION  = cuda.torchaudio
  }
  tags = tags("dev", cuda)
}
