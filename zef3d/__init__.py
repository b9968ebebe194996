"""3D-ZeF: stereo zebrafish tracking data (top and front view), 3D evaluation and baselines."""
