# Dense tissue: a 1000 x 1000 H&E tile holds 300-1,000+ nuclei. Stock COCO settings keep 1000 RPN
# proposals, sample 128 positive RoIs and return 100 detections per image, silently capping recall.
# Every stage below admits at least 1,000 instances. Model configs merge these into `model`.
dense_rpn_assigner = dict(gpu_assign_thr=300)  # >300 GT boxes: IoU matrix on CPU, not GPU memory
dense_rpn_sampler = dict(num=512)
dense_rpn_proposal = dict(nms_pre=4000, max_per_img=2000, nms=dict(type='nms', iou_threshold=0.7),
                          min_bbox_size=0)
dense_rcnn_assigner = dict(gpu_assign_thr=300)
dense_rcnn_sampler = dict(num=2048, pos_fraction=0.5)  # up to 1,024 positive RoIs per image
dense_rpn_test = dict(nms_pre=4000, max_per_img=2000, nms=dict(type='nms', iou_threshold=0.7),
                      min_bbox_size=0)
dense_rcnn_test = dict(max_per_img=1000)
