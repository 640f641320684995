# Dense tissue: a 1000 x 1000 H&E tile holds 300-1,000+ nuclei. Stock COCO settings keep 1000 RPN
# proposals, sample 128 positive RoIs and return 100 detections per image, silently capping recall.
# Every stage below admits at least 1,000 instances. Model configs merge these into `model`.

# Assigners (MaxIoUAssigner) build a (GT x priors) float32 IoU matrix. mmdet's BboxOverlaps2D peaks at
# 36 bytes per pair (broadcast intermediates), ChunkedBboxOverlaps2D at the 4-byte result plus one
# 9 MB block (benchmarks/bench_assigner.py; README "Training memory"). Past gpu_assign_thr GT boxes
# the matrix is built in host memory instead, at ~3-5 s of CPU per 1,000 GT for the RPN.
# GPU budget for one assign: 1 GiB.
#   RPN: 261,888 anchors on the 1024 x 1024 training crop: 4 B x 261,888 x 1,000 GT = 1.0 GB.
#   R-CNN: 2,000 proposals + the GT boxes: 4 B x (2,000 + 15,000) x 15,000 = 1.0 GB.
dense_assign_gpu_budget_bytes = 2**30
dense_iou_calculator = dict(type='ChunkedBboxOverlaps2D')
dense_rpn_assigner = dict(gpu_assign_thr=1000, iou_calculator=dense_iou_calculator)
dense_rpn_sampler = dict(num=512)
dense_rpn_proposal = dict(nms_pre=4000, max_per_img=2000, nms=dict(type='nms', iou_threshold=0.7),
                          min_bbox_size=0)
dense_rcnn_assigner = dict(gpu_assign_thr=15000, iou_calculator=dense_iou_calculator)
dense_rcnn_sampler = dict(num=2048, pos_fraction=0.5)  # up to 1,024 positive RoIs per image
dense_rpn_test = dict(nms_pre=4000, max_per_img=2000, nms=dict(type='nms', iou_threshold=0.7),
                      min_bbox_size=0)
dense_rcnn_test = dict(max_per_img=1000)
